"""`hifigan models`: the pretrained-model registry and what is installed."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the pretrained models, their source, license and whether they are installed",
        description="List every registered pretrained model (use a name with `synthesize --model`).",
    )
    parser.add_argument("--check", action="store_true",
                        help="also verify the sha256 of each installed weight file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hifigan.audio.frontends import describe_frontend
    from hifigan.pretrained import DEFAULT_MODEL, EXTRA_INSTALL, model_statuses

    statuses = model_statuses(check=args.check)
    rows = [("NAME", "RATE", "MEL", "LICENSE", "INSTALLED")]
    for status in statuses:
        model = status.model
        config = model.config()
        installed = "no"
        if status.path is not None:
            installed = "yes" if status.verified is None else ("yes, sha256 ok" if status.verified
                                                               else "CORRUPT (sha256 mismatch)")
        name = model.name + (" (default)" if model.name == DEFAULT_MODEL else "")
        rows.append((name, f"{config.audio.sampling_rate} Hz", describe_frontend(config.audio), model.license, installed))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print()
    for status in statuses:
        model = status.model
        print(f"{model.name}: {model.description}")
        print(f"  architecture: {model.preset.upper()} generator; trained on: {model.training_data}")
        print(f"  source: {model.source}")
        print(f"  weights: {status.path if status.path else 'not installed'}")
    if any(status.path is None for status in statuses):
        print(f"\ninstall the weights with: {EXTRA_INSTALL}")
    return 0
