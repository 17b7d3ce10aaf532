"""Conversation dataset -> LM training shards (codec tokens of both channels + the assistant's text stream).

    fullduplex data tokenize DIR --codec CKPT --tokenizer TOK --out SHARDS [--segment-s 30] [--shard I/N]

Every item is cut into ``segment_s`` windows at offsets 0, d, 2d, ... (the last one padded with
the zero token -1, as Kyutai's fine-tuning does). Each window becomes one row of

    codes  int32 [1 + 2K, T]   row 0: the assistant's per-frame text stream (lm/text.py),
                               rows 1..K: the assistant's (left) codec tokens, rows K+1..2K: the user's

with T = ceil(segment_s x frame_rate), and the user's words in the same text-stream layout as

    user_text  int32 [T]       (for an LM's transcript head, lm/model.py ``user_text_delay``)

Shard file k holds the windows of items [k x items_per_shard, (k + 1) x items_per_shard) as
``SHARDS/shard-0000k.safetensors`` (``codes``, ``user_text`` and ``item`` tensors), written
atomically: a rerun skips finished shards, so an interrupted run resumes where it stopped, and
``--shard I/N`` makes only the shard files with k % N == I. A rerun also adds ``user_text`` to finished
shards made before it existed, from the dataset's alignments alone (no audio is encoded again).
``SHARDS/tokenize.json`` records the codec, tokenizer and stream layout the LM must match.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from ..data.format import ASSISTANT, USER, read_item, read_manifest
from ..data.shard import Shard

META = "tokenize.json"


def load_tokenizer(spec: str):
    """``smollm2`` (the bundled backbone's BPE) or a tokenizer file (.model / .json)."""
    if spec == "smollm2":
        from ..lm.smollm import load_smollm2_tokenizer

        return load_smollm2_tokenizer()
    from ..lm.text import TextTokenizer

    return TextTokenizer.load(spec)


def default_pad_ids(spec: str) -> tuple[int, int]:
    """(PAD, EPAD) for a tokenizer: SmolLM2's reserved ids, or Moshi's 3 / 0."""
    if spec == "smollm2":
        from ..lm.smollm import EPAD_ID, PAD_ID

        return PAD_ID, EPAD_ID
    return 3, 0


def shard_path(out: Path, k: int) -> Path:
    return out / f"shard-{k:05d}.safetensors"


def _has_user_text(path: Path) -> bool:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as h:
        return "user_text" in h.keys()


def window_text(alignments, speaker: str, t0: float, t1: float, tokenizer, T: int, frames: int, frame_rate: float,
                pad_id: int, epad_id: int) -> torch.Tensor:
    """One speaker's words starting in [t0, t1) s -> text stream long [T], the zero token -1 from ``frames`` on."""
    from ..lm.text import text_stream

    al = [(word, (s - t0, e - t0), spk) for word, (s, e), spk in alignments if t0 <= s < t1]
    text = text_stream(al, tokenizer, T, frame_rate=frame_rate, pad_id=pad_id, epad_id=epad_id, main_speaker=speaker)
    text[frames:] = -1
    return text


@torch.no_grad()
def tokenize_item(item, codec, tokenizer, segment_s: float, pad_id: int, epad_id: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """One conversation -> (codes int32 [windows, 1 + 2K, T], the user's text int32 [windows, T])."""
    sr, fr = codec.sample_rate, codec.frame_rate
    T = math.ceil(segment_s * fr)
    seg = int(round(T * codec.frame_size))
    audio = torch.from_numpy(np.ascontiguousarray(item.audio))
    n_win = max(1, math.ceil(audio.shape[1] / seg))
    rows, user = [], []
    for w in range(n_win):
        start = w * seg
        chunk = audio[:, start:start + seg]
        codes = codec.encode(chunk[:, None])  # [2, K, t]
        K, t = codes.shape[1], codes.shape[2]
        audio_rows = torch.full((2 * K, T), -1, dtype=torch.long)
        audio_rows[:, :t] = codes.reshape(2 * K, t)
        t0, t1 = start / sr, (start + seg) / sr
        text = window_text(item.alignments, ASSISTANT, t0, t1, tokenizer, T, t, fr, pad_id, epad_id)
        rows.append(torch.cat([text[None], audio_rows]))
        user.append(window_text(item.alignments, USER, t0, t1, tokenizer, T, t, fr, pad_id, epad_id))
    return torch.stack(rows).to(torch.int32), torch.stack(user).to(torch.int32)


def add_user_text(path: Path, root: Path, entries: list, codec, tokenizer, pad_id: int, epad_id: int) -> None:
    """Give a finished shard file made without ``user_text`` its user's text, from the dataset's alignments."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    codes, items = tensors["codes"], tensors["item"]
    sr, fr, T = codec.sample_rate, codec.frame_rate, codes.shape[-1]
    seg = int(round(T * codec.frame_size))
    user, alignments, w, prev = [], None, 0, None
    for r in range(codes.shape[0]):
        i = int(items[r])
        if i != prev:
            item = read_item(root, entries[i]["path"])
            alignments, w, prev = item.alignments, 0, i
            if int((items == i).sum()) != max(1, math.ceil(item.audio.shape[1] / seg)):
                raise ValueError(f"{path}: item {i} ({entries[i]['path']}) no longer has the length it was tokenized "
                                 "with; tokenize the dataset again into a new folder")
        frames = int((codes[r, 1] != -1).sum())
        t0 = w * seg / sr
        user.append(window_text(alignments, USER, t0, t0 + seg / sr, tokenizer, T, frames, fr, pad_id, epad_id))
        w += 1
    tensors["user_text"] = torch.stack(user).to(torch.int32)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def tokenize_dataset(root: str, codec_path: str | None, tokenizer_spec: str, out: str, segment_s: float = 30.0,
                     items_per_shard: int = 16, shard: Shard | None = None, pad_id: int | None = None,
                     epad_id: int | None = None, progress: bool = True) -> dict:
    from ..codec import load_codec

    shard = shard or Shard(0, 1)
    root_p, out_p = Path(root), Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    entries = read_manifest(root_p)
    codec = load_codec(codec_path).eval()
    tok = load_tokenizer(tokenizer_spec)
    dp, de = default_pad_ids(tokenizer_spec)
    pad_id = dp if pad_id is None else pad_id
    epad_id = de if epad_id is None else epad_id
    meta = {"dataset": str(root_p.resolve()), "codec": str(codec_path or "bundled"), "tokenizer": tokenizer_spec,
            "segment_s": segment_s, "frame_rate": codec.frame_rate, "num_codebooks": codec.num_codebooks,
            "card": codec.cardinality, "text_vocab": tok.vocab_size, "pad_id": pad_id, "epad_id": epad_id,
            "items_per_shard": items_per_shard, "rows": "text, assistant codebooks, user codebooks"}
    meta_file = out_p / META
    if meta_file.exists():
        old = json.loads(meta_file.read_text())
        diff = {k: (old.get(k), v) for k, v in meta.items() if old.get(k) != v}
        if diff:
            raise ValueError(f"{out_p} holds shards made with other settings: {diff}")
    elif shard.index == 0:
        tmp = meta_file.with_name(f".{META}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(meta, indent=1) + "\n")
        os.replace(tmp, meta_file)
    n_shards = math.ceil(len(entries) / items_per_shard)
    todo = [k for k in shard.indices(n_shards) if not shard_path(out_p, k).exists()]
    textless = [k for k in shard.indices(n_shards) if k not in todo and not _has_user_text(shard_path(out_p, k))]
    for k in textless:
        add_user_text(shard_path(out_p, k), root_p, entries, codec, tok, pad_id, epad_id)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(entries[k * items_per_shard:(k + 1) * items_per_shard]) for k in todo),
                   desc="tokenize", unit="item")
    windows = 0
    for k in todo:
        parts, users, items = [], [], []
        for i in range(k * items_per_shard, min((k + 1) * items_per_shard, len(entries))):
            codes, user = tokenize_item(read_item(root_p, entries[i]["path"]), codec, tok, segment_s, pad_id, epad_id)
            parts.append(codes)
            users.append(user)
            items.append(torch.full((codes.shape[0],), i, dtype=torch.int32))
            if bar is not None:
                bar.update(1)
        final = shard_path(out_p, k)
        tmp = final.with_name(f".{final.name}.tmp{os.getpid()}")
        save_file({"codes": torch.cat(parts).contiguous(), "user_text": torch.cat(users).contiguous(),
                   "item": torch.cat(items)}, str(tmp))
        os.replace(tmp, final)
        windows += sum(p.shape[0] for p in parts)
    if bar is not None:
        bar.close()
    done = sorted(p.name for p in out_p.glob("shard-*.safetensors"))
    return {"out": str(out_p), "shards_written": len(todo), "user_text_added": len(textless), "windows_written": windows,
            "shards_present": len(done), "shards_total": n_shards}
