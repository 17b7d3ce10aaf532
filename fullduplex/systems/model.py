"""The model system: streaming codec + multistream LM, one 80 ms frame in, one frame and its text out.

Per tick, for B sessions at once:

    user [B, 1920] --codec.encode--> user codes [B, K, 1] --LMGen.step--> text + model codes [B, 1+K, 1]
    model codes --codec.decode--> audio [B, 1920];  text token --tokenizer--> text piece (PAD/EPAD skipped)

Moshi's first-frame convention: the LM replaces the first step's input by its initial tokens, so a
session's first user frame only warms up the codec (which is then restarted for that session, as
Kyutai's server does) and the first step returns nothing: that frame's output is silence. From then
on, the frame returned by ``step`` after user frame k is the system's audio for the next 80 ms;
``converse`` writes it at [(k + 1) * 80 ms, (k + 2) * 80 ms) (Full-Duplex-Bench's alignment).

Every session is one row of the batch; ``reset(i)`` restarts row i while the others go on. Rows not
``active`` in a tick are still computed (the batch has a fixed shape) on silence and their output is
ignored; reset a row before giving it to a new session.

Sampling settings are per row too: ``set_sampling(i, {"temp": 0.6})`` changes session i's, and
``reset(i)`` gives row i the system's own settings again (a new session never inherits the last one's).
The seed is the batch's: one random generator draws for all rows.
"""

from __future__ import annotations

import copy
import time
from typing import Sequence

import numpy as np
import torch

from ..lm import LMGen
from ..lm.generate import ROW_KEYS, check_row_sampling, sampling_settings
from .base import Frame
from .build import ModelParts
from .detok import Detokenizer

class BatchedModelSystem:
    """``BatchedDuplexSystem`` over a codec + LM; also usable with batch_size 1."""

    def __init__(self, parts: ModelParts, batch_size: int = 1, sampling: dict | None = None,
                 int8: bool = False, threads: int | None = None):
        if threads is not None:
            torch.set_num_threads(threads)
        self.parts = parts
        # the codec keeps its streaming state in its modules: every system gets its own copy
        self.codec, self.lm = copy.deepcopy(parts.codec).eval(), parts.lm.eval()
        if int8 or parts.int8:
            from ..lm.quantize import quantize_int8

            self.lm = quantize_int8(copy.deepcopy(self.lm))
        c = self.lm.cfg
        if self.codec.cardinality != c.card:
            raise ValueError(f"codec has {self.codec.cardinality} codes per codebook, the LM expects {c.card}")
        if c.textless:
            raise ValueError("the model system needs an LM with a text stream")
        self.sample_rate = self.codec.sample_rate
        self.frame_size = self.codec.frame_size
        self.batch_size = batch_size
        self.n_user = c.num_user_codebooks
        self.dep_q = c.dep_q
        self.sampling = sampling_settings(sampling, parts.sampling)
        s = self.sampling
        self.gen = LMGen(self.lm, use_sampling=bool(s["use_sampling"]), temp=float(s["temp"]),
                         temp_text=float(s["temp_text"]), top_k=int(s["top_k"]), top_k_text=int(s["top_k_text"]),
                         seed=s["seed"], check_inputs=False, padding_bonus=float(s["padding_bonus"]),
                         onset_temp_text=s["onset_temp_text"], onset_padding_bonus=s["onset_padding_bonus"])
        self.codec.streaming_forever(batch_size)
        self.gen.start(batch_size)
        self._defaults = self.gen.row_sampling(0)  # the settings every row starts (and restarts) with
        self.detoks = [Detokenizer(parts.tokenizer, c.existing_text_padding_id, c.existing_text_end_padding_id)
                       for _ in range(batch_size)]
        self.steps = [0] * batch_size  # frames since each session (re)started

    def reset(self, index: int | None = None) -> None:
        rows = range(self.batch_size) if index is None else [self._check_index(index)]
        mask = torch.zeros(self.batch_size, dtype=torch.bool)
        for i in rows:
            mask[i] = True
            self.steps[i] = 0
            self.detoks[i].reset()
            self.gen.set_row_sampling(i, **self._defaults)
        self.gen.reset(mask)
        self.codec.reset_streaming(mask)

    def skip_history(self, frames: int) -> None:
        """Move every session ``frames`` frames on without computing them: the LM's and the codec's
        attention caches then span what they would that far into a conversation, so a step costs what it
        would there (``bench serve --history``). The sessions' outputs are meaningless afterwards."""
        self.gen.skip(frames)
        self.codec.skip_history(frames)
        self.steps = [s + frames for s in self.steps]

    # ------------------------------------------------------------------ per-session sampling
    def effective_sampling(self, overrides: dict | None = None) -> dict:
        """The settings a session with ``overrides`` samples with (all of SAMPLING_KEYS); changes nothing.

        Keys and None values follow :func:`sampling_settings`; values are checked as ``set_sampling``
        checks them (ValueError naming the setting). ``seed`` is the batch's and cannot differ per row.
        """
        overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        sampling_settings(overrides)  # unknown keys -> ValueError naming the known ones
        seed = overrides.pop("seed", self.sampling["seed"])
        if seed != self.sampling["seed"]:
            raise ValueError(f"seed is set for the whole batch (it is {self.sampling['seed']}); "
                             f"a session cannot have its own; per-session settings: {list(ROW_KEYS)}")
        out = dict(self._defaults)
        out.update(check_row_sampling(**overrides))
        out["seed"] = self.sampling["seed"]
        return out

    def set_sampling(self, index: int, overrides: dict) -> dict:
        """Session ``index`` samples with the system's settings updated by ``overrides`` (keys of
        SAMPLING_KEYS; a key left out or None keeps the system's setting, whatever an earlier call
        set); returns them. Lasts until ``reset(index)``."""
        i = self._check_index(index)
        settings = self.effective_sampling(overrides)
        self.gen.set_row_sampling(i, **{k: settings[k] for k in ROW_KEYS})
        return self.row_sampling(i)

    def row_sampling(self, index: int) -> dict:
        """The settings session ``index`` samples with now (all of SAMPLING_KEYS)."""
        return {**self.gen.row_sampling(self._check_index(index)), "seed": self.sampling["seed"]}

    def sampling_limits(self) -> dict:
        """The largest useful top-k of each stream (its vocabulary size)."""
        return {"top_k": self.lm.cfg.card, "top_k_text": self.lm.cfg.text_card}

    def _check_index(self, index: int) -> int:
        if not 0 <= index < self.batch_size:
            raise IndexError(f"session {index} does not exist (batch of {self.batch_size})")
        return index

    @torch.no_grad()
    def step(self, user: np.ndarray, active: Sequence[bool] | None = None) -> list[Frame]:
        B, F = self.batch_size, self.frame_size
        user = np.asarray(user, dtype=np.float32)
        if user.shape != (B, F):
            raise ValueError(f"user audio must be [{B}, {F}] float32, got {user.shape}")
        act = [True] * B if active is None else [bool(a) for a in active]
        if len(act) != B:
            raise ValueError(f"active has {len(act)} entries, the batch {B}")
        t0 = time.perf_counter()
        wav = torch.from_numpy(user).clone()
        for i, a in enumerate(act):
            if not a:
                wav[i] = 0.0
        codes = self.codec.encode(wav[:, None, :])[:, : self.n_user]  # [B, K, 1]
        t_enc = time.perf_counter()
        first = [s == 0 for s in self.steps]
        out = self.gen.step(codes)
        t_lm = time.perf_counter()
        if out is None:  # every session is on its first step
            text = torch.full((B,), -2, dtype=torch.long)
            audio_codes = torch.zeros((B, self.dep_q, 1), dtype=torch.long)
            valid = torch.zeros(B, dtype=torch.bool)
        else:
            text = out[:, 0, 0]
            audio_codes = out[:, 1:, :]
            valid = (audio_codes >= 0).all(dim=1)[:, 0]
            audio_codes = audio_codes.clamp(min=0)
        pcm = self.codec.decode(audio_codes)[:, 0, :]  # [B, F]
        pcm = torch.where(valid[:, None], pcm, torch.zeros_like(pcm)).numpy()
        t_dec = time.perf_counter()
        # the first frame only warmed the codec: restart those rows' codec state (Kyutai's server does too)
        restart = torch.tensor([f and a for f, a in zip(first, act)])
        if restart.any():
            self.codec.reset_streaming(restart)
        frames = []
        timing = {"encode_ms": (t_enc - t0) * 1e3, "lm_ms": (t_lm - t_enc) * 1e3, "decode_ms": (t_dec - t_lm) * 1e3}
        for i in range(B):
            if act[i]:
                self.steps[i] += 1
                if first[i]:
                    text[i] = -2
                piece = self.detoks[i].piece(int(text[i]))
            else:
                piece = ""
            frames.append(Frame(np.ascontiguousarray(pcm[i], dtype=np.float32), piece,
                                {"token": int(text[i]), **timing}))
        return frames

    def close(self) -> None:
        self.gen.stop()
        self.codec._stop_streaming()


class ModelSystem:
    """``DuplexSystem``: one conversation over a codec + LM (a batch of one)."""

    def __init__(self, parts: ModelParts, sampling: dict | None = None, int8: bool = False,
                 threads: int | None = None):
        self.batched = BatchedModelSystem(parts, 1, sampling=sampling, int8=int8, threads=threads)
        self.sample_rate, self.frame_size = self.batched.sample_rate, self.batched.frame_size

    def reset(self) -> None:
        self.batched.reset()

    def step(self, user: np.ndarray) -> Frame:
        return self.batched.step(np.asarray(user, dtype=np.float32).reshape(1, -1))[0]
