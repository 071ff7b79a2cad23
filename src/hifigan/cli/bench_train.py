"""`hifigan bench train`: training throughput and peak memory of a recipe at a precision."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="training throughput (audio samples/s, mel frames/s) and peak memory for a config and precision",
        description="Time the real training step (generator + both discriminators, Lightning, one device) "
        "on synthetic in-memory batches, after warm-up steps. Works on CUDA GPUs and on CPU. Prints audio "
        "samples per second (batch x segment / step time), mel frames per second (audio samples / hop, "
        "NVIDIA's unit) and training segments per second.",
    )
    parser.add_argument("--config", default="v1", help="recipe name or file (default: v1)")
    parser.add_argument("--precision", default=None, choices=["32", "16-mixed", "bf16-mixed"])
    parser.add_argument("--batch-size", type=int, default=None,
                        help="micro-batch on the device (default: the recipe's batch / accumulation)")
    parser.add_argument("--accumulate", type=int, default=None, help="micro-batches per optimiser step")
    parser.add_argument("--segment-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=10, help="timed optimiser steps (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--accelerator", default="auto", choices=["auto", "gpu", "cpu", "mps"])
    parser.add_argument("--no-tf32", action="store_true")
    parser.add_argument("--fp32-grouped-convs", default=None, action=argparse.BooleanOptionalAction)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from hifigan.cli.train import parse_sets
    from hifigan.training.bench import bench_train

    overrides = parse_sets(args.sets)
    direct = {
        "training.precision": args.precision,
        "training.accumulate_grad_batches": args.accumulate,
        "training.segment_size": args.segment_size,
        "training.fp32_grouped_convs": args.fp32_grouped_convs,
        "training.tf32": False if args.no_tf32 else None,
    }
    overrides.update({k: v for k, v in direct.items() if v is not None})
    result = bench_train(args.config, overrides=overrides, batch_size=args.batch_size, steps=args.steps,
                         warmup=args.warmup, accelerator=args.accelerator)
    print(json.dumps(result.as_dict(), indent=2) if args.json else result.format())
    return 0
