"""`fullduplex eval codec`: round-trip quality of a codec for each number of codebooks (M17), next
to Mimi's published numbers (evaluation.md §8).

Test speech: the audio files in ``--data`` (wav/flac; transcripts from a same-named .txt when
present, else the ASR of the original is the reference), or sentences spoken by the project's TTS
voices. Metrics at 16 kHz for STOI/PESQ-WB/SI-SDR (as Mimi's published table), 8 kHz for PESQ-NB,
the codec's rate for mel distance. Resynthesis WER ratio = WER(ASR(reconstruction)) / WER(ASR(original)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fullduplex.audio import read, resample

from . import codec_metrics as cm
from .published import MIMI_CODEC, MIMI_GT_WER

TEST_SENTENCES = [
    ("flite-slt", "The quick brown fox jumps over the lazy dog near the river bank."),
    ("flite-rms", "Please call me tomorrow morning before nine and bring the blue folder."),
    ("flite-awb", "It was a bright cold day in April and the clocks were striking thirteen."),
    ("festival-kal", "She sells sea shells by the sea shore every summer afternoon."),
]


def test_speech(data: str | None, sr: int) -> list[tuple[str, np.ndarray, str | None]]:
    """[(name, audio at sr, reference text or None)]."""
    if data:
        files = sorted(p for p in Path(data).rglob("*") if p.suffix.lower() in (".wav", ".flac"))
        if not files:
            raise FileNotFoundError(f"{data}: no .wav/.flac files")
        out = []
        for p in files:
            x, r = read(p, channels=1, mix=True)
            txt = p.with_suffix(".txt")
            out.append((p.name, resample(x[0], r, sr), txt.read_text().strip() if txt.exists() else None))
        return out
    from fullduplex.engines import tts

    out = []
    for voice, text in TEST_SENTENCES:
        if tts.is_installed(tts.VOICES[voice]):
            a, r, _ = tts.synthesize(text, voice)
            out.append((voice, resample(a, r, sr), text))
    if not out:
        raise RuntimeError("no TTS voice installed for codec test speech; pass --data or run scripts/install.sh")
    return out


def _wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    from .text import tokens

    return float(jiwer.wer([" ".join(tokens(r)) for r in refs], [" ".join(tokens(h)) or "<empty>" for h in hyps]))


def _asr(x: np.ndarray, sr: int) -> str:
    from fullduplex.engines import asr

    return " ".join(w.word for w in asr.transcribe(x, sr))


def evaluate_codec(checkpoint: str | None = None, data: str | None = None, counts: list[int] | None = None) -> dict:
    import torch

    from fullduplex.codec import load_codec
    from fullduplex.codec.cli_ops import decode_codes, encode_array

    codec = load_codec(checkpoint)
    sr = codec.sample_rate
    total = codec.num_codebooks
    counts = counts or sorted({n for n in (1, 2, 4, 6, 8, 16, 32) if n < total} | {total})
    clips = test_speech(data, sr)
    orig_hyp = [_asr(x, sr) for _, x, _ in clips]
    refs = [t if t else h for (_, _, t), h in zip(clips, orig_hyp)]
    wer_orig = _wer(refs, orig_hyp)
    rows = []
    with torch.no_grad():
        codes = [encode_array(codec, x[None]) for _, x, _ in clips]  # [1, K, T] each
    for n in counts:
        if not 1 <= n <= total:
            raise ValueError(f"codebook count {n} outside [1, {total}]")
        m = {"stoi": [], "pesq_wb": [], "pesq_nb": [], "si_sdr": [], "mel": []}
        hyps = []
        for (name, x, _), c in zip(clips, codes):
            y = decode_codes(codec, c[:, :n])[0][: len(x)]
            y = np.pad(y, (0, len(x) - len(y)))
            x16, y16 = resample(x, sr, 16000), resample(y, sr, 16000)
            m["stoi"].append(cm.stoi(x16, y16, 16000))
            m["pesq_wb"].append(cm.pesq(x, y, sr, "wb"))
            m["pesq_nb"].append(cm.pesq(x, y, sr, "nb"))
            m["si_sdr"].append(cm.si_sdr(x16, y16))
            m["mel"].append(cm.mel_distance(x, y, sr))
            hyps.append(_asr(y, sr))
        wer = _wer(refs, hyps)

        def mean(v):
            v = [a for a in v if a is not None]
            return round(float(np.mean(v)), 4) if v else None

        kbps = n * np.log2(codec.cardinality) * codec.frame_rate / 1000
        rows.append({"codebooks": n, "kbps": round(float(kbps), 3), "STOI": mean(m["stoi"]),
                     "PESQ-WB": mean(m["pesq_wb"]), "PESQ-NB": mean(m["pesq_nb"]), "SI-SDR": mean(m["si_sdr"]),
                     "mel_distance": mean(m["mel"]), "WER": round(wer, 4),
                     "WER_ratio": round(wer / max(wer_orig, 0.01), 3), "mimi": MIMI_CODEC.get(n)})
    return {"checkpoint": checkpoint or "bundled", "sample_rate": sr, "clips": len(clips),
            "test_speech": data or "TTS", "WER_original": round(wer_orig, 4), "rows": rows,
            "mimi_reference": {"source": "Llasa (arXiv 2502.04128) Table 1, LibriSpeech test-clean",
                               "WER_ground_truth%": MIMI_GT_WER}}


def format_table(res: dict) -> str:
    head = ["codebooks", "kbps", "STOI", "PESQ-WB", "PESQ-NB", "SI-SDR", "mel_distance", "WER", "WER_ratio"]
    lines = [f"codec {res['checkpoint']} on {res['clips']} clips ({res['test_speech']}); "
             f"ASR WER of the originals {res['WER_original']}",
             " | ".join(head) + " | Mimi (STOI / PESQ-WB / PESQ-NB / WER ratio)"]
    for r in res["rows"]:
        mimi = r["mimi"]
        ref = (f"{mimi['STOI']} / {mimi['PESQ-WB']} / {mimi['PESQ-NB']} / {mimi['WER%'] / MIMI_GT_WER:.2f}"
               if mimi else "–")
        lines.append(" | ".join(str(r[h]) for h in head) + " | " + ref)
    return "\n".join(lines)
