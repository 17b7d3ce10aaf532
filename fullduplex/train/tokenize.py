"""Conversation dataset -> LM training shards (codec tokens of both channels + the assistant's text stream).

    fullduplex data tokenize DIR --codec CKPT --tokenizer TOK --out SHARDS [--segment-s 30] [--shard I/N]

Every item is cut into ``segment_s`` windows at offsets 0, d, 2d, ... (the last one padded with
the zero token -1, as Kyutai's fine-tuning does). Each window becomes one row of

    codes  int32 [1 + 2K, T]   row 0: the assistant's per-frame text stream (lm/text.py),
                               rows 1..K: the assistant's (left) codec tokens, rows K+1..2K: the user's

with T = ceil(segment_s x frame_rate), the user's words in the same text-stream layout as

    user_text  int32 [T]       (for an LM's transcript head, lm/model.py ``user_text_delay``)

and the state of the floor at each frame, from the item's events (``floor_labels``):

    floor      int8 [T]        HOLD (1): inside a pause between two sentences of the user's turn, and
                               HESITATE (3): inside a hesitation (a pause mid-sentence, after a lead-in),
                               where the assistant keeps listening; TAKE (2): from the end of the user's
                               turn to the frame where the assistant's reply begins; 0 elsewhere

Shard file k holds the windows of items [k x items_per_shard, (k + 1) x items_per_shard) as
``SHARDS/shard-0000k.safetensors`` (``codes``, ``user_text``, ``floor`` and ``item`` tensors), written
atomically: a rerun skips finished shards, so an interrupted run resumes where it stopped, and
``--shard I/N`` makes only the shard files with k % N == I. A rerun also adds ``user_text`` and
``floor`` to finished shards made before they existed, and labels the floor again in shards whose
labels an older version made (``FLOOR_VERSION``, in each shard file's metadata), from the dataset's
alignments and events alone (no audio is encoded again).
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
STREAMS = ("user_text", "floor")  # per-window tensors beside ``codes`` that a rerun adds to older shards
HOLD, TAKE, HESITATE = 1, 2, 3  # floor labels
HOLD_LABELS = (HOLD, HESITATE)  # the frames where the assistant must keep listening
# 1: HOLD inside hesitations only; 2: HOLD between the sentences of a turn, HESITATE inside hesitations
FLOOR_VERSION = 2
REPLY_WITHIN_S = 2.0  # a user's turn end is a TAKE span only if the assistant answers within this


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


def floor_version(handle) -> int | None:
    """The version of the floor labels in an open shard file (None: it has none; 1: it predates versions)."""
    if "floor" not in handle.keys():
        return None
    return int((handle.metadata() or {}).get("floor_labels", 1))


def _missing_streams(path: Path) -> list[str]:
    """The ``STREAMS`` a finished shard file lacks, or holds as an older version made them."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as h:
        missing = [k for k in STREAMS if k not in h.keys()]
        if "floor" not in missing and floor_version(h) != FLOOR_VERSION:
            missing.append("floor")
    return missing


def _save_shard(tensors: dict, path: Path) -> None:
    """Write a shard file atomically, with the version of its floor labels."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    save_file(tensors, str(tmp), metadata={"floor_labels": str(FLOOR_VERSION)})
    os.replace(tmp, path)


def window_text(alignments, speaker: str, t0: float, t1: float, tokenizer, T: int, frames: int, frame_rate: float,
                pad_id: int, epad_id: int) -> torch.Tensor:
    """One speaker's words starting in [t0, t1) s -> text stream long [T], the zero token -1 from ``frames`` on."""
    from ..lm.text import text_stream

    al = [(word, (s - t0, e - t0), spk) for word, (s, e), spk in alignments if t0 <= s < t1]
    text = text_stream(al, tokenizer, T, frame_rate=frame_rate, pad_id=pad_id, epad_id=epad_id, main_speaker=speaker)
    text[frames:] = -1
    return text


def floor_labels(events: list[dict], text: torch.Tensor, t0: float, frames: int, frame_rate: float,
                 pad_id: int) -> torch.Tensor:
    """The floor state at each frame of the window starting at ``t0`` s, whose assistant text stream is
    ``text`` [T] -> int8 [T]: at the frames lying wholly inside a pause of the user's, HESITATE if it is
    a hesitation and HOLD otherwise, unless the assistant backchannels in it (then the pause is left
    0) and only where ``text`` is PAD; TAKE from the end of a user's turn to the frame where the
    assistant's reply shows in ``text`` (its EPAD; if that comes within ``REPLY_WITHIN_S``) inclusive;
    0 elsewhere and from ``frames`` on."""
    out = torch.zeros(text.shape[0], dtype=torch.int8)

    def frame(t: float) -> float:
        return (t - t0) * frame_rate

    backchannels = [e["start"] for e in events if e.get("type") == "backchannel" and e.get("speaker") == ASSISTANT]
    for ev in events:
        if ev.get("speaker") != USER:
            continue
        if ev.get("type") == "pause":
            if any(ev["start"] <= b <= ev["end"] for b in backchannels):
                continue
            a, z = max(0, math.ceil(frame(ev["start"]))), min(frames, math.floor(frame(ev["end"])))
            if z > a:
                span = out[a:z]
                span[text[a:z] == pad_id] = HESITATE if ev.get("hesitation") else HOLD
        elif ev.get("type") == "turn" and not ev.get("interrupted"):
            end = ev["end"]
            replies = any(e.get("type") == "turn" and e.get("speaker") == ASSISTANT
                          and end <= e["start"] <= end + REPLY_WITHIN_S for e in events)
            a = math.ceil(frame(end))
            if not replies or not 0 <= a < frames:
                continue
            z = a
            while z < frames and int(text[z]) == pad_id:
                z += 1
            if z < frames and z <= frame(end + REPLY_WITHIN_S):
                out[a:z + 1] = TAKE
    return out


@torch.no_grad()
def tokenize_item(item, codec, tokenizer, segment_s: float, pad_id: int, epad_id: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One conversation -> (codes int32 [windows, 1 + 2K, T], the user's text int32 [windows, T],
    the floor labels int8 [windows, T])."""
    sr, fr = codec.sample_rate, codec.frame_rate
    T = math.ceil(segment_s * fr)
    seg = int(round(T * codec.frame_size))
    audio = torch.from_numpy(np.ascontiguousarray(item.audio))
    n_win = max(1, math.ceil(audio.shape[1] / seg))
    rows, user, floor = [], [], []
    events = item.meta.get("events", [])
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
        floor.append(floor_labels(events, text, t0, t, fr, pad_id))
    return torch.stack(rows).to(torch.int32), torch.stack(user).to(torch.int32), torch.stack(floor)


def add_streams(path: Path, root: Path, entries: list, missing: list[str], codec, tokenizer, pad_id: int,
                epad_id: int) -> None:
    """Give a finished shard file made before them its ``missing`` per-window tensors (of ``STREAMS``;
    floor labels of an older version are made again), from the dataset's alignments and events."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    codes, items = tensors["codes"], tensors["item"]
    sr, fr, T = codec.sample_rate, codec.frame_rate, codes.shape[-1]
    seg = int(round(T * codec.frame_size))
    made: dict[str, list] = {k: [] for k in missing}
    item, w, prev = None, 0, None
    for r in range(codes.shape[0]):
        i = int(items[r])
        if i != prev:
            item, w, prev = read_item(root, entries[i]["path"]), 0, i
            if int((items == i).sum()) != max(1, math.ceil(item.audio.shape[1] / seg)):
                raise ValueError(f"{path}: item {i} ({entries[i]['path']}) no longer has the length it was tokenized "
                                 "with; tokenize the dataset again into a new folder")
        frames = int((codes[r, 1] != -1).sum())
        t0 = w * seg / sr
        if "user_text" in made:
            made["user_text"].append(window_text(item.alignments, USER, t0, t0 + seg / sr, tokenizer, T, frames, fr,
                                                 pad_id, epad_id).to(torch.int32))
        if "floor" in made:
            made["floor"].append(floor_labels(item.meta.get("events", []), codes[r, 0], t0, frames, fr, pad_id))
        w += 1
    tensors.update({k: torch.stack(v) for k, v in made.items()})
    _save_shard(tensors, path)


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
    missing = {k: m for k in shard.indices(n_shards) if k not in todo and (m := _missing_streams(shard_path(out_p, k)))}
    for k, m in missing.items():
        add_streams(shard_path(out_p, k), root_p, entries, m, codec, tok, pad_id, epad_id)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(len(entries[k * items_per_shard:(k + 1) * items_per_shard]) for k in todo),
                   desc="tokenize", unit="item")
    windows = 0
    for k in todo:
        parts, users, floors, items = [], [], [], []
        for i in range(k * items_per_shard, min((k + 1) * items_per_shard, len(entries))):
            codes, user, floor = tokenize_item(read_item(root_p, entries[i]["path"]), codec, tok, segment_s, pad_id,
                                               epad_id)
            parts.append(codes)
            users.append(user)
            floors.append(floor)
            items.append(torch.full((codes.shape[0],), i, dtype=torch.int32))
            if bar is not None:
                bar.update(1)
        _save_shard({"codes": torch.cat(parts).contiguous(), "user_text": torch.cat(users).contiguous(),
                     "floor": torch.cat(floors).contiguous(), "item": torch.cat(items)}, shard_path(out_p, k))
        windows += sum(p.shape[0] for p in parts)
    if bar is not None:
        bar.close()
    done = sorted(p.name for p in out_p.glob("shard-*.safetensors"))
    added = {f"{name}_added": sum(name in m for m in missing.values()) for name in STREAMS}
    return {"out": str(out_p), "shards_written": len(todo), **added, "windows_written": windows,
            "shards_present": len(done), "shards_total": n_shards}
