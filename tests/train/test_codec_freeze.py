"""Fine-tuning the decoding side of a trained codec with its encoder and codebooks frozen."""

import pytest
import torch

from fullduplex.codec import load_codec
from fullduplex.train.codec_data import SpeechCrops
from fullduplex.train.loop import train
from fullduplex.train.metrics import read_metrics

from train_helpers import FixedBatch, codec_cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory, dataset):
    """A tiny codec whose codebooks were fitted by a few training steps."""
    out = tmp_path_factory.mktemp("codec") / "run"
    train(codec_cfg(out, dataset, steps=4, ckpt_every=100, **{"codec.adversarial": False}))
    return out / "final"


def test_frozen_encoder_and_codebooks_keep_every_code_and_train_the_decoder(tmp_path, dataset, trained):
    before = load_codec(trained).eval()
    cfg = codec_cfg(tmp_path / "ft", dataset, steps=6, log_every=1, ckpt_every=100,
                    **{"codec.init": str(trained), "codec.freeze": ["encoder", "quantizer"],
                       "codec.adversarial": False, "codec.quantizer_dropout": 0.0,
                       "codec.no_quantization_rate": 0.0, "codec.commitment_weight": 0.0,
                       "codec.dead_code_every": 1, "optim.lr": 3e-3})
    data = FixedBatch(SpeechCrops(dataset, cfg.batch_size, cfg.codec.segment_s, 0))
    assert train(cfg, data=data)["finished"]
    after = load_codec(tmp_path / "ft" / "final").eval()

    wav = SpeechCrops(dataset, 2, 1.0, seed=7).batch(0)
    with torch.no_grad():
        assert torch.equal(before.encode(wav), after.encode(wav))  # an LM trained on these codes stays valid
        assert not torch.allclose(before.decode(before.encode(wav)), after.decode(after.encode(wav)))
    a, b = before.state_dict(), after.state_dict()
    frozen = ("encoder.", "encoder_transformer.", "downsample.", "quantizer.rvq_first.input_proj.",
              "quantizer.rvq_rest.input_proj.", "quantizer.rvq_first.vq.", "quantizer.rvq_rest.vq.")
    for k in a:
        if k.startswith(frozen):
            assert torch.equal(a[k], b[k]), k
    changed = [k for k in a if k.startswith(("decoder.", "quantizer.rvq_rest.output_proj.")) and not torch.equal(a[k], b[k])]
    assert changed


def test_freeze_needs_a_trained_codec_and_known_parts(tmp_path, dataset, trained):
    with pytest.raises(ValueError, match="set codec.init"):
        train(codec_cfg(tmp_path / "a", dataset, steps=1, **{"codec.freeze": ["encoder"]}))
    with pytest.raises(ValueError, match="unknown parts"):
        train(codec_cfg(tmp_path / "b", dataset, steps=1, **{"codec.init": str(trained), "codec.freeze": ["decodr"]}))


def test_a_new_istft_decoder_learns_on_the_frozen_codes(tmp_path, dataset, trained):
    before = load_codec(trained).eval()
    cfg = codec_cfg(tmp_path / "istft", dataset, steps=12, log_every=1, ckpt_every=100,
                    **{"codec.init": str(trained), "codec.freeze": ["encoder", "quantizer"],
                       "codec.model": {"decoder": "istft", "istft_dim": 32, "istft_blocks": 1},
                       "codec.adversarial": False, "codec.quantizer_dropout": 0.0,
                       "codec.no_quantization_rate": 0.0, "codec.commitment_weight": 0.0, "optim.lr": 3e-3})
    data = FixedBatch(SpeechCrops(dataset, cfg.batch_size, cfg.codec.segment_s, 0))
    assert train(cfg, data=data)["finished"]
    losses = [m["loss"] for m in read_metrics(tmp_path / "istft") if "loss" in m]
    assert losses[-1] < 0.8 * losses[0]
    after = load_codec(tmp_path / "istft" / "final").eval()
    assert after.cfg.decoder == "istft" and before.cfg.decoder == "seanet"
    wav = SpeechCrops(dataset, 2, 1.0, seed=7).batch(0)
    with torch.no_grad():
        assert torch.equal(before.encode(wav), after.encode(wav))
        assert after.decode(after.encode(wav)).shape == wav.shape
    a, b = before.state_dict(), after.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith(("encoder.", "quantizer.rvq_first.vq.")))
    assert not any(k.startswith("decoder.model.") for k in b)


def test_with_an_initial_codec_only_the_decoder_can_change(tmp_path, dataset, trained):
    with pytest.raises(ValueError, match="only the decoder"):
        train(codec_cfg(tmp_path / "a", dataset, steps=1,
                        **{"codec.init": str(trained), "codec.model": {"decoder": "istft", "n_q": 4}}))


def test_eval_codec_scores_the_codes_or_the_unquantized_latent(dataset, trained):
    from fullduplex.train.codec_eval import evaluate_codec

    voice = SpeechCrops(dataset, 2, 1.0, seed=0).voices[0]
    coded = evaluate_codec(trained, str(dataset), [voice], clips=2, seconds=1.0)
    latent = evaluate_codec(trained, str(dataset), [voice], clips=2, seconds=1.0, unquantized=True)
    assert (coded["unquantized"], latent["unquantized"]) == (False, True)
    for r in (coded, latent):
        assert 0.0 < r["stoi"] <= 1.0 and r["mel_distance"] > 0
    assert coded["mel_distance"] != latent["mel_distance"]
    assert len(coded["codebooks"]["codes_used"]) == load_codec(trained).num_codebooks
    with pytest.raises(ValueError, match="no channel is spoken by"):
        evaluate_codec(trained, str(dataset), ["nobody"], clips=1, seconds=1.0)
