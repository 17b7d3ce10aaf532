"""The codec objective.

    loss = mel_weight x multi-scale mel L1 + wav_weight x waveform L1 + commitment_weight x RVQ commitment
           [+ adv_weight x hinge adversarial + feat_weight x feature matching]   (adversarial: true)

Quantizer dropout: with probability ``quantizer_dropout`` a batch uses a random number of codebooks
in [1, n_q]; each sample skips quantization with probability ``no_quantization_rate`` (Mimi). The
codebooks follow the data by EMA (codec/quantizer.py), dead codes are replaced every
``dead_code_every`` steps.

Semantic distillation of the first codebook (Mimi distils WavLM into it) needs a speech encoder
that runs in torch and ships offline; none is installed here (faster-whisper's Whisper tiny.en is a
CTranslate2 model and gives no gradients), so ``codec.distill`` is refused with that explanation.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..codec import Codec, load_codec, save_codec
from ..codec.config import PRESETS, CodecConfig
from ..codec.discriminator import MultiScaleSTFTDiscriminator, discriminator_loss, generator_losses
from ..codec.losses import MultiScaleMelLoss
from .codec_data import SpeechCrops
from .config import TrainConfig
from .objective import Objective


def build_codec(c) -> Codec:
    if c.init:
        model = load_codec(c.init)
        if c.model:
            raise ValueError("codec.model overrides cannot be combined with codec.init")
        return model
    if c.preset not in PRESETS:
        raise ValueError(f"codec.preset must be one of {sorted(PRESETS)}, got {c.preset!r}")
    d = PRESETS[c.preset]().to_dict()
    d.update(c.model)
    return Codec(CodecConfig.from_dict(d))


class CodecObjective(Objective):
    find_unused_parameters = True  # quantizer dropout can leave the acoustic RVQ unused
    broadcast_buffers = False      # codebooks are kept equal by the quantizer's own collectives

    def __init__(self, cfg: TrainConfig, dist, data: SpeechCrops | None = None):
        self.cfg, c = cfg, cfg.codec
        self.c = c
        self.model = build_codec(c)
        for rvq in (self.model.quantizer.rvq_first, self.model.quantizer.rvq_rest):
            for cb in rvq.codebooks():
                cb.training_cfg.decay = c.ema_decay
                cb.training_cfg.kmeans_iters = c.kmeans_iters
                cb.training_cfg.threshold_usage_ratio = c.dead_code_threshold
        self.disc = MultiScaleSTFTDiscriminator(tuple(c.disc_n_ffts), filters=c.disc_filters) if c.adversarial else None
        self.mel = MultiScaleMelLoss(self.model.sample_rate)
        if data is None:
            if not c.data:
                raise ValueError("codec.data: give the dataset folder to train on")
            data = SpeechCrops(c.data, cfg.batch_size, c.segment_s, cfg.seed, c.holdout_voices,
                               self.model.frame_size)
        self.data = data
        if c.distill:
            raise ValueError("codec.distill: semantic distillation needs a torch speech encoder available "
                             "offline (e.g. a local Hugging Face Whisper/WavLM); none is supported here yet")
        self._fake: torch.Tensor | None = None

    def parts(self) -> dict[str, nn.Module]:
        p = {"model": self.model}
        if self.disc is not None:
            p["disc"] = self.disc
        return p

    def to(self, device):
        super().to(device)
        self.mel.to(device)
        return self

    def lr(self, part: str) -> float | None:
        return self.c.disc_lr if part == "disc" else None

    def batch(self, step: int, rank: int, world: int) -> dict:
        wav = self.data.batch(step, rank, world)
        B = self.cfg.batch_size
        per = B // world
        # the same draws on every process (same seed), sliced to this process's samples
        n_q = self.model.num_codebooks
        if float(torch.rand(())) < self.c.quantizer_dropout:
            n_q = int(torch.randint(1, self.model.num_codebooks + 1, ()))
        no_q = (torch.rand(B) < self.c.no_quantization_rate)[rank * per:(rank + 1) * per]
        return {"wav": wav, "n_q": n_q, "no_q": no_q}

    def _adv_on(self, step: int) -> bool:
        return self.disc is not None and step >= self.c.disc_start_step

    def phases(self, step: int) -> list[str]:
        return ["model", "disc"] if self._adv_on(step) else ["model"]

    def loss(self, part, modules, batch, step):
        if part == "disc":
            return self._disc_loss(modules["disc"], batch)
        device = next(self.model.parameters()).device
        wav = batch["wav"].to(device)
        out = modules["model"](wav, n_q=batch["n_q"], no_quantization=batch["no_q"].to(device),
                   replace_dead_codes=self.c.dead_code_every > 0 and step % self.c.dead_code_every == 0)
        mel = self.mel(out.wav, wav)
        l1 = F.l1_loss(out.wav, wav)
        loss = self.c.mel_weight * mel + self.c.wav_weight * l1 + self.c.commitment_weight * out.commitment
        metrics = {"mel": float(mel.detach()), "l1": float(l1.detach()), "commitment": float(out.commitment.detach()),
                   "n_q": batch["n_q"]}
        metrics.update({k: float(v) for k, v in out.metrics.items() if k.startswith(("perplexity/0", "replaced"))})
        if self._adv_on(step):
            both = modules["disc"](torch.cat([wav, out.wav]))
            B = wav.shape[0]
            real = [(lg[:B], [f[:B] for f in fs]) for lg, fs in both]
            fake = [(lg[B:], [f[B:] for f in fs]) for lg, fs in both]
            adv, fm = generator_losses(real, fake)
            loss = loss + self.c.adv_weight * adv + self.c.feat_weight * fm
            metrics.update({"adv": float(adv.detach()), "feat": float(fm.detach())})
            self._fake = out.wav.detach()
        metrics["loss"] = float(loss.detach())
        return loss, metrics

    def _disc_loss(self, disc, batch):
        wav = batch["wav"].to(self._fake.device)
        both = disc(torch.cat([wav, self._fake]))
        B = wav.shape[0]
        d = discriminator_loss([(lg[:B], None) for lg, _ in both], [(lg[B:], None) for lg, _ in both])
        self._fake = None
        return d, {"disc/loss": float(d.detach())}

    def export(self, folder: Path) -> None:
        save_codec(self.model, folder)
        (Path(folder) / "TRAINING.json").write_text(json.dumps(
            {"objective": "codec", "train_voices": getattr(self.data, "voices", None),
             "holdout_voices": list(self.c.holdout_voices)}, indent=1) + "\n")
