"""Loading and saving codec weights: our checkpoint folders and Kyutai's released Mimi safetensors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .config import CodecConfig
from .model import Codec

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def randomize_codebooks(codec: Codec, seed: int = 0, wav: torch.Tensor | None = None) -> None:
    """Give every codebook random centroids (a fresh codec's codebooks are all zero).

    With calibration audio ``wav`` [B, 1, T], centroids are drawn around the projected latent of
    that audio (first level: its mean plus its spread; later levels: the spread), so that codes
    follow the input even in an untrained codec. Without it they are N(0, 1).
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        latent = codec.encode_latent(wav) if wav is not None else None
        for rvq in (codec.quantizer.rvq_first, codec.quantizer.rvq_rest):
            mean, std = 0.0, 1.0
            if latent is not None:
                proj = rvq.input_proj(latent).transpose(1, 2).reshape(-1, rvq.input_proj.out_channels)
                mean, std = proj.mean(0), proj.std(0).clamp(min=1e-8)
            for level, cb in enumerate(rvq.codebooks()):
                usage = torch.rand(cb.cluster_usage.shape, generator=g) + 0.5
                centroids = std * torch.randn(cb.embedding_sum.shape, generator=g)
                if level == 0:
                    centroids = centroids + mean
                cb.cluster_usage.copy_(usage)
                cb.embedding_sum.copy_(centroids * usage[:, None])
                cb._initialized.fill_(1)
                cb.invalidate()


def load_state(model: Codec, state: dict[str, torch.Tensor], source: str = "weights") -> Codec:
    """Load ``state`` (our keys, or Kyutai's including the legacy fused/EMA names) into ``model``.

    A state dict that does not fit the architecture raises ValueError naming the keys.
    """
    own = model.state_dict()
    bad = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
           if k in own and own[k].shape != v.shape]
    if bad:
        raise ValueError(f"{source}: weights do not match the codec config; shape mismatches: {bad[:4]}"
                         f"{' ...' if len(bad) > 4 else ''}")
    result = model.load_state_dict(dict(state), strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        raise ValueError(
            f"{source}: weights do not match the codec config; missing keys {missing[:6]}"
            f"{' ...' if len(missing) > 6 else ''}, unexpected keys {unexpected[:6]}"
            f"{' ...' if len(unexpected) > 6 else ''}. Is the config right for these weights?")
    _invalidate_codebooks(model)
    return model.eval()


def _invalidate_codebooks(model: Codec) -> None:
    """Drop the codebooks' cached embeddings after their statistics were loaded."""
    for rvq in (model.quantizer.rvq_first, model.quantizer.rvq_rest):
        for cb in rvq.codebooks():
            cb.invalidate()


def with_decoder(model: Codec, overrides: dict) -> Codec:
    """A codec with ``model``'s weights but another decoder, the one ``overrides`` (only ``decoder``
    and ``istft_*`` keys) describes, which starts from scratch."""
    other = sorted(k for k in overrides if k != "decoder" and not k.startswith("istft_"))
    if other:
        raise ValueError(f"only the decoder (decoder, istft_*) can change on a trained codec, not {other}")
    d = model.cfg.to_dict()
    d.update(overrides)
    new = Codec(CodecConfig.from_dict(d))
    result = new.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("decoder.")},
                                 strict=False)
    assert not result.unexpected_keys and all(k.startswith("decoder.") for k in result.missing_keys)
    _invalidate_codebooks(new)
    return new.train(model.training)


def load_codec(path: str | Path | None = None, config: CodecConfig | dict | None = None,
               num_codebooks: int | None = None) -> Codec:
    """Load a codec.

    ``path`` is a checkpoint folder (config.json + model.safetensors), or a ``.safetensors`` file
    (Kyutai's released Mimi when no config is given), or None for the bundled default codec.
    """
    if path is None:
        from .default import default_codec_path

        path = default_codec_path()
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such checkpoint")
    if p.is_dir():
        cfg_file, weights = p / CONFIG_NAME, p / WEIGHTS_NAME
        if not cfg_file.exists() or not weights.exists():
            raise FileNotFoundError(f"{p}: a codec checkpoint folder needs {CONFIG_NAME} and {WEIGHTS_NAME}")
        cfg = CodecConfig.from_dict(json.loads(cfg_file.read_text()))
        if (p / "UNTRAINED").exists():
            log.warning("%s is an untrained placeholder codec: its output is not speech (see its MODEL_CARD.md); "
                        "pass --checkpoint for real weights", p)
    else:
        if p.suffix != ".safetensors":
            raise ValueError(f"{p}: expected a checkpoint folder or a .safetensors file")
        weights = p
        cfg = config if isinstance(config, CodecConfig) else (
            CodecConfig.from_dict(config) if config else CodecConfig())
    if num_codebooks is not None:
        if not 1 <= num_codebooks <= cfg.n_q:
            raise ValueError(f"--num-codebooks must be in [1, {cfg.n_q}], got {num_codebooks}")
        cfg.num_codebooks = num_codebooks
    model = Codec(cfg)
    try:
        state = load_file(str(weights))
    except Exception as e:
        raise ValueError(f"{weights}: not a readable safetensors file ({e})") from e
    return load_state(model, state, str(weights))


def save_codec(model: Codec, folder: str | Path, weights_dtype: torch.dtype | None = None) -> Path:
    """Write ``folder/config.json`` and ``folder/model.safetensors`` (atomically).

    ``weights_dtype`` (e.g. torch.float16, to halve a checkpoint shipped in a repository) casts the
    parameters only; the codebooks' statistics stay float32. Loading casts back to the model's dtype.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    params = {k for k, _ in model.named_parameters()}
    state = {k: (v.detach().to(weights_dtype) if weights_dtype is not None and k in params and v.is_floating_point()
                 else v.detach()).contiguous() for k, v in model.state_dict().items()}
    tmp = folder / (WEIGHTS_NAME + ".tmp")
    save_file(state, str(tmp))
    tmp.replace(folder / WEIGHTS_NAME)
    model.cfg.save(folder / CONFIG_NAME)
    return folder
