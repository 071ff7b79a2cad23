"""`hifigan prepare DATA [--out DIR]`: check a corpus, write its train/validation lists.

`hifigan prepare ljspeech --download DIR` fetches LJ Speech 1.1 first.
"""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "check a corpus before training; write train/validation lists (and resampled copies)"


def _size(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count (150) or a fraction (0.05), got {text!r}")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help=HELP,
        description=(
            "Check every file of a corpus (an LJ Speech folder, a folder with train.txt/val.txt, "
            "a file list, or a folder of audio) and print a summary with the unusable files and "
            "why. With --out, write train.txt and val.txt there (paths relative to DIR when the "
            "files lie under it, else absolute); DIR is then a valid data argument for training."
        ),
    )
    parser.add_argument("data", metavar="DATA",
                        help="corpus folder or file list; 'ljspeech' with --download")
    parser.add_argument("--out", type=Path, metavar="DIR", help="write train.txt / val.txt here")
    parser.add_argument("--val", type=Path, metavar="LIST",
                        help="validation files (a list or a folder) instead of a split")
    parser.add_argument("--validation-size", type=_size, default=None, metavar="N",
                        help="validation files: a count or a fraction (default: min(150, 5%%))")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the split (default 1234)")
    parser.add_argument("--resplit", action="store_true",
                        help="make a seeded split even when the corpus has its own")
    parser.add_argument("--config", default=None,
                        help="preset or config file: target rate, hop, segment (default v1)")
    parser.add_argument("--resample-to", type=int, nargs="?", const=0, default=None, metavar="RATE",
                        help="with --out, write copies resampled to RATE Hz (default: the config's "
                             "rate) under DIR/wavs and list those")
    parser.add_argument("--workers", type=int, default=None, help="threads (default: CPU cores, at most 4)")
    parser.add_argument("--strict", action="store_true", help="exit with status 1 if any file is unusable")
    parser.add_argument("--download", type=Path, metavar="DIR",
                        help="with DATA 'ljspeech': download, verify and unpack LJ Speech 1.1 into DIR")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hifigan.audio.io import printable_path
    from hifigan.config import resolve_config
    from hifigan.data.prepare import prepare_corpus
    from hifigan.errors import DataError

    progress = not args.no_progress
    config = resolve_config(args.config)
    data = Path(args.data)
    out = args.out
    if args.download is not None:
        if args.data.lower() != "ljspeech":
            raise DataError("--download only fetches LJ Speech: use `hifigan prepare ljspeech --download DIR`")
        from hifigan.data.lists import normalise_path
        from hifigan.data.ljspeech import download_ljspeech
        from hifigan.data.prepare import check_out_folder

        if out is not None:
            check_out_folder(normalise_path(out))  # before a 2.6 GB download, not after
        data = download_ljspeech(args.download, progress=progress)
        print(f"LJ Speech is in {data}")
        out = out or data
    elif args.data.lower() == "ljspeech" and not data.exists():
        raise DataError("to fetch LJ Speech, say where: `hifigan prepare ljspeech --download DIR`")
    resample_to = args.resample_to
    if resample_to == 0:
        resample_to = config.audio.sampling_rate
    if resample_to is not None and out is None:
        raise DataError("--resample-to writes copies under --out DIR: give --out too")
    result = prepare_corpus(
        data, out=out, config=config, val=args.val, validation_size=args.validation_size,
        seed=args.seed, resplit=args.resplit, resample_to=resample_to, workers=args.workers,
        progress=progress,
    )
    report = result.report
    print(report.summary())
    if not report.usable:
        raise DataError(f"{data}: no usable audio files")
    if result.splits is not None:
        print(f"Split: {result.splits.describe()}")
        if result.resampled:
            print(f"Resampled {result.resampled} files to {resample_to} Hz under "
                  f"{printable_path(Path(out) / 'wavs')}")
        print(f"Wrote {printable_path(result.train_list)} and {printable_path(result.val_list)}")
        if report.unusable:
            print(f"Wrote the unusable files and reasons to {printable_path(Path(out) / 'unusable.txt')}")
    return 1 if args.strict and report.unusable else 0
