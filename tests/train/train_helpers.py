"""Helpers of the training tests: a fake conversation dataset, random LM shards, debug configs, an adapter folder."""

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from fullduplex.train.config import config_from_dict, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "fullduplex" / "train" / "configs"


def make_dataset(root: Path, items: int = 2, seconds: float = 3.0, seed: int = 0) -> Path:
    """Stereo 24 kHz items of harmonic 'speech' with word alignments and voices, in the dataset format."""
    from fullduplex.data.format import Item, append_manifest, write_item

    rng = np.random.default_rng(seed)
    sr = 24_000
    t = np.arange(int(seconds * sr)) / sr
    entries = []
    for i in range(items):
        chans = []
        for ch in range(2):
            f0 = 100 + 60 * ch + 20 * i
            env = (np.sin(2 * np.pi * 2.5 * t + ch) > 0).astype(np.float32)
            x = sum(np.sin(2 * np.pi * f0 * k * t * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))) / k for k in range(1, 6))
            chans.append((0.1 * env * x + 0.003 * rng.standard_normal(t.shape)).astype(np.float32))
        words = []
        for k, s in enumerate(np.arange(0.1, seconds - 0.5, 0.4)):
            spk = "SPEAKER_MAIN" if k % 2 == 0 else "SPEAKER_OTHER"
            words.append((["hello", "there", "how", "are", "you"][k % 5], (float(s), float(s) + 0.3), spk))
        item = Item(np.stack(chans), words, {"voices": {"SPEAKER_MAIN": "voice-a", "SPEAKER_OTHER": f"voice-{'bc'[i % 2]}"}})
        entries.append(write_item(root, f"audio/{i:06d}.wav", item))
    append_manifest(root, entries)
    return root


def make_shards(folder: Path, windows: int = 12, frames: int = 16, seed: int = 0) -> Path:
    """Random shards with the layout of `data tokenize` for the lm_debug model (1 text + 2 + 2 codebooks,
    and the user's text)."""
    g = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(2):
        n = windows // 2
        text = torch.randint(0, 64, (n, 1, frames), generator=g)
        text[:, :, ::3] = 3  # PAD
        audio = torch.randint(0, 32, (n, 4, frames), generator=g)
        codes = torch.cat([text, audio], 1).to(torch.int32)
        user = torch.randint(0, 64, (n, frames), generator=g)
        user[:, 1::2] = 3
        save_file({"codes": codes, "user_text": user.to(torch.int32), "item": torch.arange(n, dtype=torch.int32)},
                  str(folder / f"shard-{k:05d}.safetensors"))
    (folder / "tokenize.json").write_text(json.dumps({"num_codebooks": 2, "card": 32, "text_vocab": 64,
                                                      "pad_id": 3, "epad_id": 0}))
    return folder


def codec_cfg(out: Path, dataset: Path, **over):
    d = {"out_dir": str(out), "codec.data": str(dataset), "progress": False, "threads": 1}
    d.update(over)
    return load_config(CONFIGS / "codec_debug.yaml", d)


def lm_cfg(out: Path, shards: Path, **over):
    d = {"out_dir": str(out), "lm.shards": str(shards), "progress": False, "threads": 1}
    d.update(over)
    return load_config(CONFIGS / "lm_debug.yaml", d)


def adapter_folder(tmp_path: Path, shards: Path, steps: int = 3):
    """An adapter folder (the bundled model's kind) trained for ``steps`` on a saved debug base:
    (its final/, the settings that made it, teacher-forcing codes [1, 5, 12] that fit it)."""
    from fullduplex.lm import LMConfig, LMModel, save_checkpoint
    from fullduplex.train.loop import train

    torch.manual_seed(0)
    base = save_checkpoint(LMModel(LMConfig.from_dict(load_config(CONFIGS / "lm_debug.yaml").lm.model)),
                           tmp_path / "base")
    first = {"lm.lora": True, "lm.lora_rank": 4, "lm.init": str(base), "lm.model": {}}
    assert train(lm_cfg(tmp_path / "a", shards, steps=steps, ckpt_every=steps, **first))["finished"]
    codes = torch.randint(0, 32, (1, 5, 12), generator=torch.Generator().manual_seed(0))
    codes[:, 0] %= 64
    return tmp_path / "a" / "final", first, codes


class FixedBatch:
    """The same global batch at every step (to check that the loss goes down)."""

    def __init__(self, source, step: int = 0):
        self.source, self.step = source, step
        self.voices = getattr(source, "voices", None)
        self.channels = getattr(source, "channels", None)

    def batch(self, step, rank=0, world=1):
        return self.source.batch(self.step, rank, world)

    def crops(self, step, rank=0, world=1):
        return self.source.crops(self.step, rank, world)


__all__ = ["FixedBatch", "adapter_folder", "codec_cfg", "config_from_dict", "lm_cfg", "make_dataset", "make_shards"]


def ddp_worker(rank: int, world: int, port: int, cfg_dict: dict, kind: str, source: str) -> None:
    """One process of a torch.multiprocessing DDP run (gloo on CPU), as torchrun would start it."""
    import os

    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    from fullduplex.train.loop import train

    cfg = config_from_dict(cfg_dict)
    train(cfg)
