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
    """`fullduplex data synth|ingest|stats|merge|export-lhotse|validate`."""
    p = sub.add_parser("data", help="two-channel conversation datasets: synthesize, ingest, inspect")
    dsub = p.add_subparsers(dest="data_cmd", required=True)

    q = dsub.add_parser("synth", help="synthesize two-speaker conversations (left = assistant, right = user)")
    q.add_argument("--out", required=True)
    q.add_argument("--hours", type=float, required=True)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--jobs", type=int, default=1, help="parallel processes")
    q.add_argument("--shard", default=None, help="I/N: make only items k with k %% N == I")
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

    q = dsub.add_parser("validate", help="check a dataset folder against the format")
    q.add_argument("dir")
    q.set_defaults(func=_data_validate)


def _data_synth(a) -> int:
    from .data.shard import parse_shard
    from .data.synth import run_synth

    _print_json(run_synth(a.out, a.hours, seed=a.seed, jobs=a.jobs, shard=parse_shard(a.shard)))
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


def _data_validate(a) -> int:
    from .data.format import validate

    problems = validate(a.dir)
    for p in problems:
        print(p)
    return 1 if problems else 0


# --------------------------------------------------------------------------------------- bench
def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="speed benchmarks, reported as ratios against a reference in the same run")
    bsub = p.add_subparsers(dest="bench_cmd", required=True)
    q = bsub.add_parser("codec", help="streaming encode+decode per 80 ms frame, ours vs the moshi package")
    q.add_argument("--config", default="mimi", choices=["mimi", "small", "tiny"])
    q.add_argument("--frames", type=int, default=25, help="frames timed per repeat")
    q.add_argument("--repeats", type=int, default=3)
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


def _bench_lm(a) -> int:
    from .lm.bench import bench_lm

    res = bench_lm(steps=a.steps, repeats=a.repeats, threads=a.threads, reference=not a.no_reference,
                   big=not a.no_135m)
    if a.json:
        _print_json(res)
    else:
        for k, v in res.items():
            print(f"{k:>32}: {v}")
    return 0


def _bench_codec(a) -> int:
    from .codec import bench

    res = bench.bench_codec(config=a.config, frames=a.frames, repeats=a.repeats, threads=a.threads,
                            reference=not a.no_reference)
    if a.json:
        _print_json(res)
    else:
        for k, v in res.items():
            print(f"{k:>24}: {v}")
    return 0


def _bench_data(a) -> int:
    from .data.bench import bench_data

    res = bench_data(minutes=a.minutes, jobs=a.jobs)
    if a.json:
        _print_json(res)
    else:
        for k, v in res.items():
            print(f"{k:>24}: {v}")
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
    _add_bench(sub)
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
