"""The `fullduplex` command line: parses arguments and calls one function per subcommand.

Each command group has its own ``_add_<group>`` function below; the work itself lives in the
package (codec/, data/, ...), never here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=None, sort_keys=False))


def _print_result(res: dict, as_json: bool) -> int:
    """One JSON object with --json, else one "key: value" line per entry."""
    if as_json:
        _print_json(res)
    else:
        for k, v in res.items():
            print(f"{k:>32}: {v}")
    return 0


# --------------------------------------------------------------------------------------- codec
def _add_codec(sub) -> None:
    p = sub.add_parser("codec", help="encode / decode audio with the neural codec")
    csub = p.add_subparsers(dest="codec_cmd", required=True)

    def common(q):
        q.add_argument("--checkpoint", default=None,
                       help="checkpoint folder (config.json + model.safetensors) or Kyutai Mimi .safetensors; "
                            "default: the bundled codec")
        q.add_argument("--num-codebooks", type=int, default=None, help="codebooks to use (default: the model's)")

    q = csub.add_parser("encode", help="audio file -> codes .npz")
    q.add_argument("input")
    q.add_argument("-o", "--output", required=True)
    q.add_argument("--mix", action="store_true", help="downmix stereo input to mono instead of refusing it")
    common(q)
    q.set_defaults(func=_codec_encode)

    q = csub.add_parser("decode", help="codes .npz -> audio file")
    q.add_argument("input")
    q.add_argument("-o", "--output", required=True)
    common(q)
    q.set_defaults(func=_codec_decode)

    q = csub.add_parser("roundtrip", help="audio file -> codes -> audio file")
    q.add_argument("input")
    q.add_argument("-o", "--output", required=True)
    q.add_argument("--mix", action="store_true", help="downmix stereo input to mono instead of refusing it")
    q.add_argument("--streaming", action="store_true", help="run frame by frame, as live")
    common(q)
    q.set_defaults(func=_codec_roundtrip)


def _codec_encode(a) -> int:
    from .codec import cli_ops

    return cli_ops.encode_file(a.input, a.output, a.checkpoint, a.num_codebooks, mix=a.mix)


def _codec_decode(a) -> int:
    from .codec import cli_ops

    return cli_ops.decode_file(a.input, a.output, a.checkpoint, a.num_codebooks)


def _codec_roundtrip(a) -> int:
    from .codec import cli_ops

    return cli_ops.roundtrip_file(a.input, a.output, a.checkpoint, a.num_codebooks, mix=a.mix,
                                  streaming=a.streaming)


# --------------------------------------------------------------------------------------- data
def _add_data(sub) -> None:
    """`fullduplex data synth|ingest|stats|merge|export-lhotse|speech|validate|tokenize`."""
    p = sub.add_parser("data", help="two-channel conversation datasets: synthesize, ingest, inspect")
    dsub = p.add_subparsers(dest="data_cmd", required=True)

    q = dsub.add_parser("synth", help="synthesize two-speaker conversations (left = assistant, right = user)")
    q.add_argument("--out", required=True)
    q.add_argument("--hours", type=float, required=True)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--jobs", type=int, default=1, help="parallel processes")
    q.add_argument("--shard", default=None, help="I/N: make only items k with k %% N == I")
    q.add_argument("--timing", action="append", default=[], metavar="KEY=VALUE",
                   help="change the turn-taking model (repeatable), e.g. --timing interruption_prob=1 "
                        "--timing stop_delay_s=0.1,0.25 (keys: fullduplex/data/timing.py)")
    q.add_argument("--weight", action="append", default=[], metavar="FAMILY=W",
                   help="change how often a task family is drawn (repeatable), e.g. --weight story=3; "
                        "families: arithmetic spelling counting fact time smalltalk story user_story")
    q.add_argument("--assistant-voice", default=None, help="the assistant's voice (default: flite-slt)")
    q.add_argument("--user-voice", action="append", default=[], metavar="VOICE",
                   help="draw the users from these voices (repeatable; default: the 12 dialogue voices, "
                        "fullduplex/engines/tts.py), e.g. --user-voice piper-joe")
    q.set_defaults(func=_data_synth)

    q = dsub.add_parser("ingest", help="real stereo recordings (or mono pairs) -> dataset, with a report")
    q.add_argument("src")
    q.add_argument("--out", required=True)
    q.add_argument("--shard", default=None, help="I/N: ingest only this share of SRC")
    q.add_argument("--vad", default="silero", choices=["silero", "energy"])
    q.set_defaults(func=_data_ingest)

    q = dsub.add_parser("stats", help="turn-taking statistics (IPUs, pauses, gaps, overlaps, FTO, backchannels)")
    q.add_argument("dir")
    q.add_argument("--json", action="store_true")
    q.add_argument("--plot", default=None, help="write a timeline plot of one conversation to this PNG")
    q.add_argument("--plot-index", type=int, default=0)
    q.add_argument("--vad", default="energy", choices=["energy", "silero"])
    q.set_defaults(func=_data_stats)

    q = dsub.add_parser("merge", help="join (shard) manifests of several folders into OUT/manifest.jsonl")
    q.add_argument("out")
    q.add_argument("dirs", nargs="+")
    q.set_defaults(func=_data_merge)

    q = dsub.add_parser("export-lhotse", help="write lhotse recordings/supervisions JSONL manifests")
    q.add_argument("dir")
    q.add_argument("--out", required=True)
    q.set_defaults(func=_data_export_lhotse)

    q = dsub.add_parser("speech", help="each voice's speech cut from conversations into its own files "
                                       "(a folder for codec training)")
    q.add_argument("dirs", nargs="+", help="conversation dataset folders")
    q.add_argument("--out", required=True, help="new folder: OUT/<voice>/<voice>-<n>.<format>")
    q.add_argument("--minutes-per-voice", type=float, default=None, help="stop taking a voice after this much")
    q.add_argument("--exclude-voice", action="append", default=[], metavar="VOICE",
                   help="leave this voice out (repeatable), e.g. the codec's evaluation voices")
    q.add_argument("--format", default="flac", choices=["flac", "wav", "ogg"])
    q.add_argument("--seed", type=int, default=0, help="order in which items are visited")
    q.set_defaults(func=_data_speech)

    q = dsub.add_parser("validate", help="check a dataset folder against the format")
    q.add_argument("dir")
    q.set_defaults(func=_data_validate)

    q = dsub.add_parser("tokenize", help="dataset -> LM training shards (codec tokens + the assistant's text stream)")
    q.add_argument("dir")
    q.add_argument("--codec", default=None, help="codec checkpoint folder (default: the bundled codec)")
    q.add_argument("--tokenizer", default="smollm2", help="smollm2, or a tokenizer file (.model / .json)")
    q.add_argument("--out", required=True)
    q.add_argument("--segment-s", type=float, default=30.0, help="window length in seconds")
    q.add_argument("--items-per-shard", type=int, default=16)
    q.add_argument("--shard", default=None, help="I/N: make only shard files k with k %% N == I")
    q.set_defaults(func=_data_tokenize)


def _data_synth(a) -> int:
    from .data.shard import parse_shard
    from .data.synth import SynthConfig, run_synth

    cfg = SynthConfig.with_settings(a.timing, a.weight, a.assistant_voice, a.user_voice)
    _print_json(run_synth(a.out, a.hours, seed=a.seed, jobs=a.jobs, shard=parse_shard(a.shard), cfg=cfg))
    return 0


def _data_speech(a) -> int:
    from .data.speech import export_speech

    _print_json(export_speech(a.dirs, a.out, minutes_per_voice=a.minutes_per_voice,
                              exclude_voices=set(a.exclude_voice), fmt=a.format, seed=a.seed))
    return 0


def _data_ingest(a) -> int:
    from .data.ingest import run_ingest
    from .data.shard import parse_shard

    _print_json(run_ingest(a.src, a.out, shard=parse_shard(a.shard), vad=a.vad)["summary"])
    return 0


def _data_stats(a) -> int:
    from .data.stats import dataset_stats, format_table

    s = dataset_stats(a.dir, vad=a.vad)
    if a.plot:
        from .data.plot import plot_timeline

        s["plot"] = str(plot_timeline(a.dir, a.plot, index=a.plot_index, vad=a.vad))
    if a.json:
        _print_json(s)
    else:
        print(format_table(s))
    return 0


def _data_merge(a) -> int:
    from .data.merge import merge

    _print_json(merge(a.out, a.dirs))
    return 0


def _data_export_lhotse(a) -> int:
    from .data.lhotse_export import export_lhotse

    _print_json([str(p) for p in export_lhotse(a.dir, a.out)])
    return 0


def _data_tokenize(a) -> int:
    from .data.shard import parse_shard
    from .train.tokenize import tokenize_dataset

    _print_json(tokenize_dataset(a.dir, a.codec, a.tokenizer, a.out, segment_s=a.segment_s,
                                 items_per_shard=a.items_per_shard, shard=parse_shard(a.shard)))
    return 0


def _data_validate(a) -> int:
    from .data.format import validate

    problems = validate(a.dir)
    for p in problems:
        print(p)
    return 1 if problems else 0


# --------------------------------------------------------------------------------------- lm
def _add_lm(sub) -> None:
    p = sub.add_parser("lm", help="the multistream speech-text LM")
    lsub = p.add_subparsers(dest="lm_cmd", required=True)
    q = lsub.add_parser("init", help="write a checkpoint folder: a fresh speech LM on SmolLM2-135M-Instruct's "
                                     "pretrained text backbone, with its tokenizer")
    q.add_argument("out", help="checkpoint folder to create (config.json, model.safetensors, tokenizer.json)")
    q.set_defaults(func=_lm_init)


def _lm_init(a) -> int:
    from .lm.loading import save_checkpoint
    from .lm.smollm import smollm2_lm

    model, tok = smollm2_lm()
    save_checkpoint(model, a.out, tokenizer=tok)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {a.out}: {n / 1e6:.1f} M parameters, text vocabulary {tok.vocab_size}")
    return 0


def _add_pack(sub) -> None:
    p = sub.add_parser("pack", help="write a compact model-system folder (codec/ + lm/ + system.json) from a "
                                    "trained codec and a trained LM adapter folder")
    p.add_argument("--codec", required=True, help="codec checkpoint folder (train codec's final/ or a step's model/)")
    p.add_argument("--lm", required=True, help="LM adapter folder (lora.json + lora.safetensors, what train lm exports)")
    p.add_argument("-o", "--out", required=True, help="folder to write (then: --system OUT, or --checkpoint OUT)")
    p.add_argument("--codec-dtype", default="float16", choices=["float32", "float16", "bfloat16"])
    p.add_argument("--lm-dtype", default="int8", choices=["float32", "float16", "bfloat16", "int8"],
                   help="storage of the adapters and trained tensors (int8: per-row, half of float16)")
    p.add_argument("--tokenizer", action="store_true", help="copy the tokenizer file (default: use the base's)")
    p.add_argument("--float-runtime", action="store_true",
                   help="run the LM in float32 by default (default: dynamic int8, as a CPU model is meant to)")
    p.add_argument("--sampling", action="append", default=[], metavar="KEY=VALUE",
                   help="a sampling setting the system runs with by default (repeatable), e.g. "
                        "--sampling padding_bonus=-0.5 --sampling temp_text=0.7")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_pack)


def _pack(a) -> int:
    from .systems.build import pack_system
    from .systems.registry import parse_settings

    try:
        sampling = parse_settings(a.sampling)
    except ValueError as e:
        raise ValueError(f"--sampling {e}") from None
    sizes = pack_system(a.codec, a.lm, a.out, codec_dtype=a.codec_dtype, lm_dtype=a.lm_dtype,
                        tokenizer=a.tokenizer, int8=not a.float_runtime, sampling=sampling)
    if a.json:
        print(json.dumps({"out": a.out, "bytes": sizes, "total_bytes": sum(sizes.values())}))
    else:
        for name, n in sizes.items():
            print(f"{n / 1e6:8.2f} MB  {name}")
        print(f"{sum(sizes.values()) / 1e6:8.2f} MB  in {a.out}")
    return 0


# --------------------------------------------------------------------------------------- bench
def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="speed benchmarks, reported as ratios against a reference in the same run")
    bsub = p.add_subparsers(dest="bench_cmd", required=True)
    q = bsub.add_parser("codec", help="streaming encode+decode per 80 ms frame, ours vs the moshi package")
    q.add_argument("--config", default="mimi", choices=["mimi", "small", "tiny"])
    q.add_argument("--decoder", default="seanet", choices=["seanet", "istft"],
                   help="our decoder (the reference always has Mimi's SEANet decoder)")
    q.add_argument("--frames", type=int, default=25, help="frames timed per repeat")
    q.add_argument("--repeats", type=int, default=5, help="passes of each implementation, taking turns")
    q.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    q.add_argument("--no-reference", action="store_true", help="skip the moshi package")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_bench_codec)
    q = bsub.add_parser("data", help="conversation synthesis and statistics speed (x real time)")
    q.add_argument("--minutes", type=float, default=10.0, help="minutes of conversation to synthesize")
    q.add_argument("--jobs", type=int, default=None, help="processes (default: all cores)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_bench_data)
    q = bsub.add_parser("lm", help="LM streaming step time: ours vs the moshi package's LMGen, and a 135M model")
    q.add_argument("--steps", type=int, default=50, help="steps timed per repeat (small config)")
    q.add_argument("--repeats", type=int, default=5)
    q.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    q.add_argument("--no-reference", action="store_true", help="skip the moshi package")
    q.add_argument("--no-135m", action="store_true", help="skip the SmolLM2-135M-sized model")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_bench_lm)
    q = bsub.add_parser("serve", help="concurrent real-time sessions one server process holds (p99 frame time)")
    q.add_argument("--system", default="default",
                   help="default (the bundled model) | random (its size, untrained) | random-tiny")
    q.add_argument("--checkpoint", default=None)
    q.add_argument("--max-sessions", type=int, default=8, help="largest session count tried")
    q.add_argument("--frames", type=int, default=40, help="ticks timed per session count")
    q.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    q.add_argument("--fp32", action="store_true", help="keep the LM in float32 (default: int8 linears)")
    q.add_argument("--history-s", type=float, default=None,
                   help="seconds of conversation behind every session when timing starts (default: the LM's "
                        "attention context, from where a step costs the most; 0: fresh sessions)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_bench_serve)
    q = bsub.add_parser("cascade", help="cascade response latency on synthetic questions, per turn detector")
    q.add_argument("--detectors", default="silence,smart,text", help="comma-separated: silence, smart, text")
    q.add_argument("-n", type=int, default=20, help="questions per detector (at most 20)")
    q.add_argument("--no-paused", action="store_true", help="skip the turns with a pause in the middle")
    q.add_argument("--threads", type=int, default=1, help="torch threads for the local LLM")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_bench_cascade)


def _bench_cascade(a) -> int:
    import torch

    from .systems.cascade_bench import bench_cascade

    torch.set_num_threads(a.threads)
    res = bench_cascade(detectors=tuple(a.detectors.split(",")), n=a.n, paused=not a.no_paused)
    if a.json:
        _print_json(res)
    else:
        for r in res["results"]:
            print(f"{r['detector']:>8}: answered {r['answered']}/{r['questions']}, early in a pause "
                  f"{r['early_in_pause']}, medians {r['median']}")
        print(f"load average {res['load_avg_start']} -> {res['load_avg_end']}, {res['wall_s']} s")
    return 0


def _bench_serve(a) -> int:
    from .server.bench import bench_serve

    res = bench_serve(system=a.system, checkpoint=a.checkpoint, max_sessions=a.max_sessions, frames=a.frames,
                      threads=a.threads, int8=not a.fp32, history_s=a.history_s)
    return _print_result(res, a.json)


def _bench_lm(a) -> int:
    from .lm.bench import bench_lm

    res = bench_lm(steps=a.steps, repeats=a.repeats, threads=a.threads, reference=not a.no_reference,
                   big=not a.no_135m)
    return _print_result(res, a.json)


def _bench_codec(a) -> int:
    from .codec import bench

    res = bench.bench_codec(config=a.config, frames=a.frames, repeats=a.repeats, threads=a.threads,
                            reference=not a.no_reference, decoder=a.decoder)
    return _print_result(res, a.json)


def _bench_data(a) -> int:
    from .data.bench import bench_data

    res = bench_data(minutes=a.minutes, jobs=a.jobs)
    return _print_result(res, a.json)


# --------------------------------------------------------------------------------------- converse / serve
def _system_args(q) -> None:
    q.add_argument("--system", default="default",
                   help="default | random (untrained, default size) | random-tiny | echo | "
                        "cascade[-silence|-smart|-text][@LLM_URL] | ws://HOST:PORT/api/chat")
    q.add_argument("--checkpoint", default=None, help="model-system checkpoint folder (codec/ + lm/)")
    q.add_argument("--int8", action="store_true", help="int8 dynamic quantization of the LM's linear layers")
    q.add_argument("--temp", type=float, default=None, help="audio sampling temperature (default 0.8)")
    q.add_argument("--temp-text", type=float, default=None, help="text sampling temperature (default 0.7)")
    q.add_argument("--top-k", type=int, default=None, help="audio top-k (default 250)")
    q.add_argument("--top-k-text", type=int, default=None, help="text top-k (default 25)")
    q.add_argument("--padding-bonus", type=float, default=None,
                   help="added to the text PAD logit (default 0): below 0 the model takes turns sooner and "
                        "holds them longer, above 0 it waits more (measured in the model card)")
    q.add_argument("--onset-temp-text", type=float, default=None,
                   help="text temperature while the model is silent, deciding whether to speak "
                        "(default: --temp-text)")
    q.add_argument("--onset-padding-bonus", type=float, default=None,
                   help="PAD bonus while the model is silent (default: --padding-bonus): below it, the model "
                        "takes the floor more readily without holding it longer when interrupted")
    q.add_argument("--seed", type=int, default=None, help="sampling seed")
    q.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on a shared machine more threads spin against each other)")


def _sampling(a) -> dict:
    return {"temp": a.temp, "temp_text": a.temp_text, "top_k": a.top_k, "top_k_text": a.top_k_text,
            "padding_bonus": a.padding_bonus, "onset_temp_text": a.onset_temp_text,
            "onset_padding_bonus": a.onset_padding_bonus, "seed": a.seed}


def _add_converse(sub) -> None:
    p = sub.add_parser("converse", help="feed a user recording frame by frame, write the conversation")
    p.add_argument("input", nargs="?", help="the user's audio (any rate; stereo is downmixed)")
    p.add_argument("-o", "--output", help="stereo output (left = system, right = user); text goes to .json")
    p.add_argument("--batch", metavar="DIR", help="a Full-Duplex-Bench folder: every */input.wav -> output.wav")
    p.add_argument("--realtime", action="store_true", help="pace the frames at 80 ms, as live")
    p.add_argument("--tail", type=float, default=0.0, metavar="S",
                   help="append S seconds of silence to the input, so the system can answer after it (default 0: "
                        "the output is as long as the input, Full-Duplex-Bench's convention)")
    p.add_argument("--json", action="store_true")
    _system_args(p)
    p.set_defaults(func=_converse)


def _converse(a) -> int:
    from .systems import converse as cv
    from .systems.registry import make_system

    if (a.batch is None) == (a.input is None):
        raise ValueError("give either INPUT -o OUTPUT or --batch DIR")
    if a.input is not None and not a.output:
        raise ValueError("give -o OUTPUT.wav")
    from .systems.remote import RemoteError

    system = make_system(a.system, a.checkpoint, sampling=_sampling(a), int8=a.int8, threads=a.threads)
    try:
        if a.batch:
            res = cv.converse_folder(system, a.batch, realtime=a.realtime)
        else:
            res = cv.converse_file(system, a.input, a.output, realtime=a.realtime, tail_s=a.tail)
    except RemoteError as e:
        print(f"fullduplex: error: {e}", file=sys.stderr)
        return 2
    if a.json:
        _print_json(res)
    else:
        for r in res if isinstance(res, list) else [res]:
            print(f"{r['output']}: {r['duration_s']} s, {r['realtime_factor']} x real time; text: {r['text'][:200]!r}")
    return 0


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="WebSocket server (Moshi's protocol) and the browser client")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8998)
    p.add_argument("--max-sessions", type=int, default=4, help="concurrent conversations (one batched step)")
    p.add_argument("--auth-token", default=None, help="require ?token=... (or an Authorization: Bearer header)")
    p.add_argument("--idle-timeout", type=float, default=30.0, help="seconds without client audio before closing")
    p.add_argument("--max-message-kb", type=int, default=256, help="largest accepted WebSocket message")
    p.add_argument("--max-messages-per-s", type=float, default=200.0, help="per-session message rate limit")
    _system_args(p)
    p.set_defaults(func=_serve)


def _serve(a) -> int:
    from .server.app import ServerConfig, run_server

    cfg = ServerConfig(host=a.host, port=a.port, max_sessions=a.max_sessions, auth_token=a.auth_token,
                       idle_timeout_s=a.idle_timeout, max_message_bytes=a.max_message_kb * 1024,
                       max_messages_per_s=a.max_messages_per_s)
    run_server(cfg, system=a.system, checkpoint=a.checkpoint, sampling=_sampling(a), int8=a.int8,
               threads=a.threads)
    return 0


# --------------------------------------------------------------------------------------- eval
def _add_eval(sub) -> None:
    """`fullduplex eval --system A --system B --suite quick --out DIR`, `eval codec`, `eval suite`."""
    p = sub.add_parser("eval", help="evaluate duplex systems (S1-S10 scenarios, M1-M19 metrics) or a codec")
    p.add_argument("--system", action="append", default=[],
                   help="system to evaluate (repeatable): silence | scripted | scripted-nonstop | echo | "
                        "a name the systems registry knows")
    p.add_argument("--suite", default="quick", help="quick | full | tiny | a folder of items (input.wav + meta.json)")
    p.add_argument("--out", default=None, help="output folder (runs, records, report.md, report.html)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sessions", type=int, default=1, metavar="N",
                   help="run N items at once as sessions of one batched model (model systems only; faster on "
                        "many cores; M19, the real-time factor of one session, is then not measured)")
    p.add_argument("--items", default=None, metavar="S1=12,S4=12",
                   help="only these scenarios of the named suite, with these counts (e.g. more barge-ins "
                        "to rank two models on yielding)")
    p.add_argument("--repeats", type=int, default=1, metavar="K",
                   help="run every item K times per system and pool the runs: a sampling model answers "
                        "differently each time, and one run cannot rank two close models")
    p.add_argument("--json", action="store_true", help='print {"systems": {NAME: {"M1": value, ...}}}')
    p.set_defaults(func=_eval_systems)
    esub = p.add_subparsers(dest="eval_cmd")
    q = esub.add_parser("codec", help="STOI, PESQ, SI-SDR, mel distance, resynthesis WER per number of codebooks")
    q.add_argument("--checkpoint", default=None, help="codec checkpoint (default: the bundled codec)")
    q.add_argument("--data", default=None, help="folder of speech files (default: TTS test sentences)")
    q.add_argument("--codebooks", default=None, help="comma-separated codebook counts (default: 1,2,4,...,all)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_eval_codec)
    q = esub.add_parser("abx", help="word ABX error across and within speakers: how well a codec's tokens "
                                    "(its semantic codebook, all its codebooks) tell spoken words apart")
    q.add_argument("--codec", action="append", default=None, metavar="CHECKPOINT",
                   help="codec checkpoint folder (repeatable; 'bundled' or nothing: the bundled codec)")
    q.add_argument("--voices", nargs="+", default=None,
                   help="TTS voices that say the words (default: the codec recipe's held-out voices)")
    q.add_argument("--words", nargs="+", default=None,
                   help="the words to tell apart (default: numbers one-twelve, the days, five months)")
    q.add_argument("--no-whisper", action="store_true", help="leave out the Whisper tiny.en reference row")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_eval_abx)
    q = esub.add_parser("suite", help="only build a scenario suite folder")
    q.add_argument("name", help="quick | full | tiny")
    q.add_argument("--out", required=True)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--items", default=None, metavar="S1=12,S4=12", help="only these scenarios, with these counts")
    q.set_defaults(func=_eval_suite)


def _eval_systems(a) -> int:
    from .eval.run import evaluate, json_summary

    if not a.system or not a.out:
        raise ValueError("fullduplex eval needs --system (one or more) and --out")
    res = evaluate(a.system, a.suite, a.out, seed=a.seed, progress=not a.json, sessions=a.sessions,
                   items=a.items, repeats=a.repeats)
    if a.json:
        _print_json(json_summary(res))
    else:
        print(f"report: {os.path.join(a.out, 'report.md')} and report.html")
    return 0


def _eval_codec(a) -> int:
    from .eval.codec_eval import evaluate_codec, format_table

    counts = [int(x) for x in a.codebooks.split(",")] if a.codebooks else None
    res = evaluate_codec(a.checkpoint, a.data, counts)
    if a.json:
        _print_json(res)
    else:
        print(format_table(res))
    return 0


def _eval_abx(a) -> int:
    from .eval.codec_abx import VOICES, WORDS, evaluate_abx, format_table

    codecs = [None if c in ("bundled", "default") else c for c in (a.codec or ["bundled"])]
    res = evaluate_abx(codecs, a.voices or VOICES, a.words or WORDS, whisper=not a.no_whisper, progress=not a.json)
    _print_json(res) if a.json else print(format_table(res))
    return 0


def _eval_suite(a) -> int:
    from .eval.suite import build_suite, get_config

    print(build_suite(get_config(a.name, a.seed, a.items), a.out))
    return 0


# --------------------------------------------------------------------------------------- train
def _add_train(sub) -> None:
    """`fullduplex train codec|lm --config FILE [--resume]`, `train eval-codec` and `train eval-lm`."""
    p = sub.add_parser("train", help="train the codec or the LM (single process or under torchrun)")
    tsub = p.add_subparsers(dest="train_cmd", required=True)
    for kind in ("codec", "lm"):
        q = tsub.add_parser(kind, help=f"train the {kind} from a YAML/JSON config (fullduplex/train/configs/)")
        q.add_argument("--config", required=True, help="config file, or the name of a bundled one (e.g. codec_debug)")
        q.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest")
        q.add_argument("--out-dir", default=None, help="override the config's out_dir")
        q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set optim.lr=1e-4 --set codec.data=data/synth")
        q.set_defaults(func=_train_run, kind=kind)
    q = tsub.add_parser("eval-codec", help="STOI / PESQ-wb / mel distance of a codec on held-out voices")
    q.add_argument("--checkpoint", default=None, help="codec checkpoint folder (default: the bundled codec)")
    q.add_argument("--data", required=True, help="conversation dataset folder")
    q.add_argument("--voices", nargs="+", required=True, help="evaluate the channels spoken by these voices")
    q.add_argument("--clips", type=int, default=20)
    q.add_argument("--seconds", type=float, default=4.0)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--unquantized", action="store_true",
                   help="decode the encoder's latent without quantizing it (what a decoder trained with "
                        "codec.no_quantization_rate > 0 also learns from): the autoencoder's own ceiling")
    q.set_defaults(func=_train_eval_codec)
    q = tsub.add_parser("eval-lm", help="teacher-forced loss of an LM checkpoint on shards (a validation loss)")
    q.add_argument("--checkpoint", required=True, help="LM checkpoint or adapter folder (e.g. a run's final/)")
    q.add_argument("--shards", required=True, help="folder written by `fullduplex data tokenize`")
    q.add_argument("--windows", type=int, default=None, help="score only the first N windows")
    q.add_argument("--batch-size", type=int, default=4)
    q.add_argument("--text-padding-weight", type=float, default=0.5)
    q.add_argument("--first-codebook-weight", type=float, default=100.0)
    q.add_argument("--listening", action="store_true",
                   help="score every window again with another window's user stream and report how much the "
                        "losses rise (0: the model ignores what the user says)")
    q.add_argument("--padding-bonus", type=float, default=0.0,
                   help="with floor labels in the shards: the PAD bonus of the text sampling the turn-taking "
                        "report assumes (as a packed model's sampling.padding_bonus)")
    q.add_argument("--temp-text", type=float, default=None,
                   help="text sampling temperature of that report (default: the runtime's)")
    q.add_argument("--top-k-text", type=int, default=None, help="text sampling top-k of that report (default: the runtime's)")
    q.set_defaults(func=_train_eval_lm)


def _train_run(a) -> int:
    from .train.config import load_config, parse_override
    from .train.loop import train

    overrides = dict(parse_override(x) for x in a.set)
    if a.out_dir:
        overrides["out_dir"] = a.out_dir
    overrides.setdefault("kind", a.kind)
    cfg = load_config(_config_path(a.config), overrides)
    if cfg.kind != a.kind:
        raise ValueError(f"config kind is {cfg.kind!r} but the command is `train {a.kind}`")
    _print_json(train(cfg, resume=a.resume))
    return 0


def _config_path(name: str) -> str:
    from pathlib import Path

    if Path(name).exists():
        return name
    bundled = Path(__file__).parent / "train" / "configs" / f"{name}.yaml"
    return str(bundled) if bundled.exists() else name


def _train_eval_codec(a) -> int:
    from .train.codec_eval import evaluate_codec

    _print_json(evaluate_codec(a.checkpoint, a.data, a.voices, clips=a.clips, seconds=a.seconds, seed=a.seed,
                               unquantized=a.unquantized))
    return 0


def _train_eval_lm(a) -> int:
    from .train.lm_eval import evaluate_lm

    sampling = {k: v for k, v in {"temp_text": a.temp_text, "top_k_text": a.top_k_text}.items() if v is not None}
    _print_json(evaluate_lm(a.checkpoint, a.shards, batch_size=a.batch_size, windows=a.windows,
                            text_padding_weight=a.text_padding_weight,
                            first_codebook_weight=a.first_codebook_weight, listening=a.listening,
                            padding_bonus=a.padding_bonus, **sampling))
    return 0


# --------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="fullduplex", description="Full-duplex speech-to-speech toolkit.")
    p.add_argument("--version", action="version", version=f"fullduplex {__version__}")
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="cmd", required=True)
    _add_codec(sub)
    _add_data(sub)
    _add_lm(sub)
    _add_pack(sub)
    _add_bench(sub)
    _add_converse(sub)
    _add_serve(sub)
    _add_eval(sub)
    _add_train(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("NO_TORCH_COMPILE", "1")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    from .audio import AudioError

    try:
        return int(args.func(args) or 0)
    except (AudioError, FileNotFoundError, ValueError) as e:
        print(f"fullduplex: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
