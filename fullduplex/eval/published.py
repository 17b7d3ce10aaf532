"""Published numbers to print next to ours (evaluation.md §1.6, §2.1, §6, §8). ``note`` says how
comparable a row is: FDB numbers come from real/other data, parakeet ASR and FDB's rules."""

from __future__ import annotations

SYSTEMS = ["Moshi", "PersonaPlex", "GPT-Realtime", "Gemini Live", "Freeze-Omni", "dGSLM"]

# metric id -> ({system: value}, note)
PUBLISHED: dict[str, tuple[dict, str]] = {
    "M1": ({"Moshi": 0.941, "PersonaPlex": 0.992, "GPT-Realtime": 1.000, "Gemini Live": 0.655,
            "Freeze-Omni": 0.336, "dGSLM": 0.975}, "FDB v1 smooth turn-taking TOR (Candor)"),
    "FDB.turn_tor": ({"Moshi": 0.941, "PersonaPlex": 0.992, "GPT-Realtime": 1.000, "Gemini Live": 0.655,
                      "Freeze-Omni": 0.336, "dGSLM": 0.975}, "FDB v1 smooth turn-taking TOR (Candor)"),
    "M2": ({"Moshi": 0.265, "PersonaPlex": 0.070, "GPT-Realtime": 1.470, "Gemini Live": 1.301,
            "Freeze-Omni": 0.953, "dGSLM": 0.352}, "FDB turn latency: clipped at 0, TO=1 only, mean"),
    "FDB.turn_latency": ({"Moshi": 0.265, "PersonaPlex": 0.070, "GPT-Realtime": 1.470, "Gemini Live": 1.301,
                          "Freeze-Omni": 0.953, "dGSLM": 0.352}, "FDB v1 turn latency (s)"),
    "M4b": ({"Moshi": 0.985, "PersonaPlex": 0.584, "GPT-Realtime": 0.010, "Gemini Live": 0.255,
             "Freeze-Omni": 0.642, "dGSLM": 0.934}, "FDB v1 pause TOR, synthetic set (Candor: 0.980/0.662/0.120/"
                                                    "0.310/0.481/0.935)"),
    "M5": ({"Moshi": 0.06, "PersonaPlex": 1.5, "GPT-Realtime": 0.42, "Gemini Live": 0.72, "Freeze-Omni": 0.06,
            "dGSLM": 0.9}, "FDB BC Freq x 60 (per clip minute, not per user-floor minute); humans ~2/min"),
    "M6": ({"Moshi": 1.000, "PersonaPlex": 0.327, "GPT-Realtime": 0.000, "Gemini Live": 0.091,
            "Freeze-Omni": 0.636, "dGSLM": 0.691}, "FDB v1 backchannel TOR (ICC)"),
    "FDB.bc_freq": ({"Moshi": 0.001, "PersonaPlex": 0.025, "GPT-Realtime": 0.007, "Gemini Live": 0.012,
                     "Freeze-Omni": 0.001, "dGSLM": 0.015}, "FDB v1 BC frequency (/s)"),
    "M7": ({"Moshi": 0.957, "PersonaPlex": 0.649, "GPT-Realtime": 0.980, "Gemini Live": 0.896,
            "Freeze-Omni": 0.997, "dGSLM": 0.934}, "FDB BC JSD (lower better) - a different quantity"),
    "M8": ({"Moshi": "0.73-0.83", "Freeze-Omni": "0.49-0.67"}, "FD-Bench success-interrupt rate (SIR)"),
    "M9": ({"Moshi": "1.35-1.53", "Freeze-Omni": "3.6-11.9"}, "FD-Bench IRD (median ai_end - u_start, s)"),
    "M10": ({"Moshi": 1.000, "PersonaPlex": 1.000, "GPT-Realtime": 0.970, "Gemini Live": 0.891,
             "Freeze-Omni": 0.867, "dGSLM": 0.917}, "FDB v1 interruption TOR"),
    "FDB.intr_tor": ({"Moshi": 1.000, "PersonaPlex": 1.000, "GPT-Realtime": 0.970, "Gemini Live": 0.891,
                      "Freeze-Omni": 0.867, "dGSLM": 0.917}, "FDB v1 interruption TOR"),
    "M10.latency": ({"Moshi": 0.257, "PersonaPlex": 0.400, "GPT-Realtime": 1.500, "Gemini Live": 1.183,
                     "Freeze-Omni": 1.409, "dGSLM": 2.531}, "FDB interruption latency (mean, s)"),
    "FDB.intr_latency": ({"Moshi": 0.257, "PersonaPlex": 0.400, "GPT-Realtime": 1.500, "Gemini Live": 1.183,
                          "Freeze-Omni": 1.409, "dGSLM": 2.531}, "FDB v1 interruption latency (s)"),
    "M11": ({"Moshi": 0.765, "PersonaPlex": 4.210, "GPT-Realtime": 3.850, "Gemini Live": 3.376,
             "Freeze-Omni": 3.615, "dGSLM": 0.201}, "FDB LLM relevance 0-5 - not comparable to a keyword rate"),
    "M12": ({"Moshi": 0.393}, "FD-Bench noise-interrupt rate (NIR), Moshi"),
    "M19": ({"Moshi": "0.16 s algorithmic, ~0.2 s on an L4"}, "Moshi README"),
}

# Mimi at 16 kHz on LibriSpeech test-clean (Llasa, arXiv 2502.04128, Table 1): codebooks -> numbers
MIMI_CODEC = {
    8: {"kbps": 1.1, "STOI": 0.91, "PESQ-WB": 2.25, "PESQ-NB": 2.80, "WER%": 2.96},
    6: {"kbps": 0.825, "STOI": 0.89, "PESQ-WB": 1.99, "PESQ-NB": 2.51, "WER%": 3.61},
    4: {"kbps": 0.55, "STOI": 0.85, "PESQ-WB": 1.64, "PESQ-NB": 2.09, "WER%": 4.89},
}
MIMI_GT_WER = 1.96
HUMAN = {
    "M2": "humans: FTO mode 0-200 ms (Stivers 2009); English mean ~0.24 s",
    "M5": "humans: ~2 backchannels/min per listener",
    "M7": "humans: BC onsets mostly -0.5..+0.8 s around the partner's phrase end",
    "M15": "humans: ~40 % of speaker changes overlap (Heldner & Edlund 2010)",
}
