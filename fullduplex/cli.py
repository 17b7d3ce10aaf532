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
    """`fullduplex data synth|ingest|stats|tokenize|merge|export-lhotse`."""


# --------------------------------------------------------------------------------------- bench
def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="speed benchmarks, reported as ratios against a reference in the same run")
    bsub = p.add_subparsers(dest="bench_cmd", required=True)
    q = bsub.add_parser("codec", help="streaming encode+decode per 80 ms frame, ours vs the moshi package")
    q.add_argument("--config", default="mimi", choices=["mimi", "small"])
    q.add_argument("--frames", type=int, default=25, help="frames timed per repeat")
    q.add_argument("--repeats", type=int, default=3)
    q.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    q.add_argument("--no-reference", action="store_true", help="skip the moshi package")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=_bench_codec)


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
