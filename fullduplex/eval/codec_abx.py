"""`fullduplex eval abx`: how well a codec's tokens tell spoken words apart across speakers.

ABX discriminability (evaluation.md §8, "ABX"; Moshi reports it for Mimi's semantic level) at the
level of words: A and X are the same word, B another word; the triplet is an error when X is closer
to B than to A. Across speakers, A and B come from one voice and X from another, so a representation
scores well only if it keeps what was said and drops who said it. Within a speaker, all three come
from one voice (X in another carrier sentence than A).

Test speech: target words (numbers, days, months: the words the duplex model must hear to answer
the suite's questions) inside carrier sentences, spoken by the project's TTS voices; each word's
span comes from the voice's own timing. A token is the representation's frames that overlap the
word; the distance between two tokens is the frame cosine distance averaged along their DTW path.

Representations, all at the codec's frame rate (12.5 Hz): a log-mel spectrogram averaged per frame
(no learning: the floor a codec should beat), Whisper tiny.en's encoder states (a speech recognizer
that attends to the whole sentence, not causal: the ceiling), and for each codec its encoder's latent before quantization and the quantized output
of its first (semantic) codebook and of all its codebooks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORDS = ("one two three four five six seven eight nine ten eleven twelve "
         "Monday Tuesday Wednesday Thursday Friday Saturday Sunday March April May June July").split()
CARRIERS = ("Say {} again.", "I think {} is the answer.", "Well, it was {}, I believe.")
# the voices the codec recipe holds out of training (docs/training.md)
VOICES = ("pico-en-gb", "mbrola-us2", "festival-ked")


@dataclass
class Token:
    """One spoken target word: which word, which voice, which carrier, and its span (s) in ``clip``."""

    word: str
    voice: str
    carrier: int
    clip: int
    start: float
    end: float


def speech(voices, words=WORDS, carriers=CARRIERS, sr: int = 24_000, progress: bool = False):
    """Carrier sentences with each target word in each installed voice of ``voices``:
    (clips [list of float32 at sr], tokens [Token]). ValueError when fewer than two voices are installed."""
    from tqdm import tqdm

    from fullduplex.audio import resample
    from fullduplex.engines import tts

    have = [v for v in voices if v in tts.VOICES and tts.is_installed(tts.VOICES[v])]
    if len(have) < 2:
        raise ValueError(f"ABX across speakers needs two installed voices of {list(voices)}, found "
                         f"{have}; install the TTS voices (scripts/install.sh) or pass --voices")
    clips, tokens = [], []
    for v in tqdm(have, desc="abx speech", unit="voice", disable=not progress):
        texts = [c.format(w) for w in words for c in carriers]
        for i, (audio, rate, ws) in enumerate(tts.synthesize_many(texts, v)):
            w, c = words[i // len(carriers)], i % len(carriers)
            hit = next((x for x in ws if x.word.strip(".,?!").lower() == w.lower()), None)
            if hit is None:
                raise RuntimeError(f"voice {v} gave no timing for {w!r} in {texts[i]!r}")
            tokens.append(Token(w, v, c, len(clips), hit.start, hit.end))
            clips.append(resample(audio, rate, sr).astype(np.float32))
    return clips, tokens


def dtw_distances(a: np.ndarray, alen: np.ndarray, b: np.ndarray, blen: np.ndarray) -> np.ndarray:
    """DTW distances between every sequence of a [N, L, D] and of b [M, L', D] (true lengths alen [N],
    blen [M]): the frame cosine distance averaged along each pair's cheapest path -> [N, M]."""
    an = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-8)
    bn = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-8)
    d = 1.0 - np.einsum("nid,mjd->nmij", an, bn, optimize=True)            # [N, M, L, L']
    L, Lb = d.shape[2:]
    cost = np.full((L + 1, Lb + 1) + d.shape[:2], np.inf, dtype=np.float64)
    steps = np.zeros_like(cost)
    cost[0, 0] = 0.0
    for i in range(1, L + 1):
        for j in range(1, Lb + 1):
            prev = np.stack([cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]])
            pick = prev.argmin(axis=0)[None]
            cost[i, j] = np.take_along_axis(prev, pick, 0)[0] + d[:, :, i - 1, j - 1]
            steps[i, j] = np.take_along_axis(np.stack([steps[i - 1, j - 1], steps[i - 1, j], steps[i, j - 1]]),
                                             pick, 0)[0] + 1
    rows, cols = np.arange(len(alen))[:, None], np.arange(len(blen))[None, :]
    return cost[alen[:, None], blen[None, :], rows, cols] / steps[alen[:, None], blen[None, :], rows, cols]


def word_frames(feats: np.ndarray, start: float, end: float, frame_rate: float) -> np.ndarray:
    """The rows of feats [frames, D] whose frame [f, f+1) / frame_rate overlaps [start, end)."""
    lo = int(np.floor(start * frame_rate))
    hi = max(lo + 1, int(np.ceil(end * frame_rate)))
    return feats[lo:min(hi, len(feats))] if lo < len(feats) else feats[-1:]


def abx_errors(dist: np.ndarray, tokens: list[Token]) -> dict:
    """ABX error rates (%) from the token distance matrix [N, N].

    A and B are two words in one voice and one carrier sentence (the same context); X is A's word in
    another voice (across) or in the same voice and another carrier (within). Each (A word, B word,
    voice(s)) cell scores the share of its triplets with d(B, X) < d(A, X), ties counting half; the
    rate is the mean over cells."""
    words = sorted({t.word for t in tokens})
    voices = sorted({t.voice for t in tokens})
    at = {(t.word, t.voice, t.carrier): i for i, t in enumerate(tokens)}
    carriers = sorted({t.carrier for t in tokens})

    def cell(a, b, s1, s2):
        e = []
        for c in carriers:
            ia, ib = at.get((a, s1, c)), at.get((b, s1, c))
            if ia is None or ib is None:
                continue
            xs = [at[a, s2, cx] for cx in carriers if (a, s2, cx) in at and (s2 != s1 or cx != c)]
            e += [float(dist[ib, x] < dist[ia, x]) + 0.5 * float(dist[ib, x] == dist[ia, x]) for x in xs]
        return float(np.mean(e)) if e else None

    across, within = [], []
    for a in words:
        for b in words:
            if a != b:
                for s1 in voices:
                    within.append(cell(a, b, s1, s1))
                    across += [cell(a, b, s1, s2) for s2 in voices if s2 != s1]

    def rate(v):
        v = [x for x in v if x is not None]
        return round(100 * float(np.mean(v)), 2) if v else None

    return {"across": rate(across), "within": rate(within)}


def token_distances(feats: list[np.ndarray], tokens: list[Token], frame_rate: float) -> np.ndarray:
    """feats: per clip [frames, D] -> symmetric DTW distance matrix between the tokens [N, N]."""
    segs = [word_frames(feats[t.clip], t.start, t.end, frame_rate) for t in tokens]
    lens = np.array([len(s) for s in segs])
    padded = np.zeros((len(segs), lens.max(), segs[0].shape[1]), np.float32)
    for i, s in enumerate(segs):
        padded[i, : len(s)] = s
    dist = np.concatenate([dtw_distances(padded[i:i + 64], lens[i:i + 64], padded, lens)
                           for i in range(0, len(segs), 64)])
    return (dist + dist.T) / 2  # DTW is symmetric up to ties in the path's length


def log_mel_frames(clip: np.ndarray, sr: int, frame_rate: float, n_mels: int = 80) -> np.ndarray:
    """log10 mel power spectrogram (25 ms windows, 10 ms hop) averaged per codec frame: [frames, n_mels]."""
    import torch

    from .codec_metrics import mel_filters

    n_fft, hop = int(0.025 * sr), int(0.01 * sr)
    x = torch.from_numpy(np.asarray(clip, np.float32))
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True).abs() ** 2
    mel = np.log10(np.maximum(mel_filters(sr, n_fft, n_mels) @ spec.numpy(), 1e-8)).T  # [T100, n_mels]
    per = round(sr / frame_rate / hop)
    n = len(mel) // per
    return mel[: n * per].reshape(n, per, n_mels).mean(axis=1)


def codec_frames(codec, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the encoder's latent before quantization, the first codebook's quantized output, all codebooks'
    quantized output), each [frames, D]."""
    import torch

    with torch.no_grad():
        latent = codec.encode_latent(torch.from_numpy(clip)[None, None])
        codes = codec.quantizer.encode(latent)
        semantic = codec.quantizer.decode(codes[:, :1])
        full = codec.quantizer.decode(codes)
    return latent[0].T.numpy(), semantic[0].T.numpy(), full[0].T.numpy()


def evaluate_abx(codecs: list[str | None], voices=VOICES, words=WORDS, whisper: bool = True,
                 progress: bool = True) -> dict:
    """ABX error rates (%) across and within speakers for each representation; ``codecs`` are checkpoint
    folders (None: the bundled codec). All codecs must share one sample rate and frame rate."""
    from tqdm import tqdm

    from fullduplex.codec import load_codec

    models = [(c or "bundled", load_codec(c)) for c in codecs]
    sr = models[0][1].sample_rate if models else 24_000
    rate = models[0][1].frame_rate if models else 12.5
    for name, m in models:
        if m.sample_rate != sr or m.frame_rate != rate:
            raise ValueError(f"codec {name} runs at {m.sample_rate} Hz / {m.frame_rate} frames/s, the first at "
                             f"{sr} Hz / {rate}: compare codecs of one rate")
    if len(set(words)) < 2:
        raise ValueError(f"ABX needs at least two different words, got {list(words)}")
    clips, tokens = speech(voices, words, sr=sr, progress=progress)
    reps: dict[str, list[np.ndarray]] = {"log-mel (no learning)": [log_mel_frames(c, sr, rate) for c in clips]}
    if whisper:
        from fullduplex.engines.asr import encoder_features

        reps["Whisper tiny.en encoder"] = [encoder_features(c[None], sr, rate)[0] for c in clips]
    for name, m in models:
        frames = [codec_frames(m, c) for c in clips]
        reps[f"{name}: latent before quantization"] = [f[0] for f in frames]
        reps[f"{name}: codebook 1 (semantic)"] = [f[1] for f in frames]
        reps[f"{name}: all {m.num_codebooks} codebooks"] = [f[2] for f in frames]
    rows = []
    for name, feats in tqdm(reps.items(), desc="abx", unit="representation", disable=not progress):
        rows.append({"representation": name, **abx_errors(token_distances(feats, tokens, rate), tokens)})
    return {"words": len({t.word for t in tokens}), "voices": sorted({t.voice for t in tokens}),
            "tokens": len(tokens), "frame_rate": rate, "rows": rows}


def format_table(res: dict) -> str:
    lines = [f"word ABX error (%), {res['words']} words x {len(CARRIERS)} carriers x {len(res['voices'])} voices "
             f"({', '.join(res['voices'])}) at {res['frame_rate']} frames/s; lower keeps more of the words",
             "representation | across speakers | within a speaker"]
    lines += [f"{r['representation']} | {r['across']} | {r['within']}" for r in res["rows"]]
    return "\n".join(lines)
