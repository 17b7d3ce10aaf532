"""Makes the stored fixtures of the codec tests, once, with Kyutai's `moshi` package.

    NO_TORCH_COMPILE=1 python tests/codec/make_fixtures.py

Random initialisation differs across torch versions, so the weights are stored, never re-drawn.
"""

import os
from pathlib import Path

os.environ.setdefault("NO_TORCH_COMPILE", "1")

import torch  # noqa: E402
from moshi.models import loaders  # noqa: E402
from moshi.quantization.core_vq import EuclideanCodebook  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

from fullduplex import audio  # noqa: E402
from fullduplex.codec.config import tiny_config  # noqa: E402

HERE = Path(__file__).parent / "assets"
SAMPLE = Path(__file__).resolve().parents[2] / "fullduplex" / "assets" / "sample.wav"


def main() -> None:
    torch.manual_seed(1234)
    mimi = loaders.get_mimi(None, tiny_config().to_kyutai(), num_codebooks=8)
    # Codebooks start at zero (every code would be 0). Draw centroids around the projected latent of
    # the bundled speech sample (first level: mean + spread; later levels: spread), so that codes
    # follow the input although the model is untrained.
    wav, _ = audio.read(SAMPLE, 24_000, channels=1)
    with torch.no_grad():
        latent = mimi._encode_to_unquantized_latent(torch.from_numpy(wav)[None])
        for rvq in (mimi.quantizer.rvq_first, mimi.quantizer.rvq_rest):
            proj = rvq.input_proj(latent)[0].T
            mean, std = proj.mean(0), proj.std(0)
            for level, layer in enumerate(rvq.vq.layers):
                cb = layer._codebook
                assert isinstance(cb, EuclideanCodebook)
                cb.cluster_usage.uniform_(0.5, 1.5)
                centroids = std * torch.randn_like(cb.embedding_sum) + (mean if level == 0 else 0.0)
                cb.embedding_sum.copy_(centroids * cb.cluster_usage[:, None])
                cb._initialized.fill_(1)
                cb.register_buffer("_embedding", None, persistent=False)
    HERE.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in mimi.state_dict().items()}, str(HERE / "mimi_tiny.safetensors"))


if __name__ == "__main__":
    main()
