"""`hifigan` command: a thin argparse layer over the Python API.

Each subcommand lives in its own module with `register(subparsers)`, which
adds its parser and sets `func`; heavy imports happen inside `func`, so
`hifigan --help` stays fast. Errors the user can act on (HiFiGANError) are
printed as one line and exit with status 2; anything else is a bug and keeps
its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

# module names under hifigan.cli, in the order `hifigan --help` lists them
COMMANDS = ["synthesize", "models", "inspect_checkpoint", "prepare", "train", "finetune", "evaluate", "export"]
# `hifigan bench synth|train`
BENCH_COMMANDS = ["bench_synth", "bench_train"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hifigan",
        description="HiFi-GAN vocoder: train, fine-tune, synthesize, evaluate, export.",
    )
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        _register(name, subparsers)
    bench = subparsers.add_parser("bench", help="speed benchmarks (synthesis, training)")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="WHAT")
    for name in BENCH_COMMANDS:
        _register(name, bench_sub)
    bench.set_defaults(func=lambda args: bench.print_help() or 1)
    return parser


def _register(name: str, subparsers: argparse._SubParsersAction) -> None:
    importlib.import_module(f"hifigan.cli.{name}").register(subparsers)


def _version() -> str:
    from hifigan import __version__

    return f"hifigan {__version__}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    from hifigan.errors import HiFiGANError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 1
    try:
        result = args.func(args)
    except HiFiGANError as exc:
        print(f"hifigan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hifigan {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
