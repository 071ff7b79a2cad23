"""`hifigan train`: train or resume a run from a recipe and a data folder."""
from __future__ import annotations

import argparse
from typing import Any

EPILOG = """\
examples:
  hifigan train --config v1 --data corpus/ --out runs/v1
  hifigan train --config v1-nvidia --data corpus/ --out runs/nv --devices 8
  hifigan train --config my-recipe.yaml --data corpus/ --out runs/x --precision bf16-mixed --set training.ema_decay=0.999
Re-running the same command on the same --out resumes from its newest checkpoint.
Files are never deleted to make room for another start: --restart and resuming an older
checkpoint move the old files to OUT/previous-<time>/.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a HiFi-GAN (one device to many nodes); resumes an existing run",
        description="Train HiFi-GAN with the authors' GAN step (PyTorch Lightning, manual optimisation). "
        "Settings come from the recipe (--config); options given here override it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", default=None,
                        help="recipe name (v1, v2, v3, v1-nvidia), a YAML/JSON recipe file, or the authors' "
                             "config.json (default: v1; when resuming: the run's own config.yaml)")
    parser.add_argument("--data", required=True, help="data folder (audio files, optional train.txt/val.txt)")
    add_run_arguments(parser)
    parser.set_defaults(func=run)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `train` and `finetune`."""
    parser.add_argument("--out", required=True, help="run directory (checkpoints, logs, export)")
    parser.add_argument("--val", default=None,
                        help="validation files (a list or a folder) instead of the data's own split")
    hw = parser.add_argument_group("hardware")
    hw.add_argument("--devices", default="1", help="devices (GPUs, or CPU processes) per node, or 'auto' (default 1)")
    hw.add_argument("--num-nodes", type=int, default=1, help="nodes (torchrun or SLURM sets up the rest)")
    hw.add_argument("--accelerator", default="auto", choices=["auto", "gpu", "cpu", "mps"])
    hw.add_argument("--precision", default=None, choices=["32", "16-mixed", "bf16-mixed"],
                    help="fp32, fp16 autocast with loss scaling, or bf16 autocast (default: the recipe's)")
    hw.add_argument("--no-tf32", action="store_true", help="turn TF32 off on Ampere and newer GPUs")
    hw.add_argument("--fp32-grouped-convs", default=None, action=argparse.BooleanOptionalAction,
                    help="keep the scale discriminator's grouped convolutions in fp32 under mixed "
                         "precision (NVIDIA's --no_amp_grouped_conv)")
    opt = parser.add_argument_group("recipe overrides")
    opt.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps")
    opt.add_argument("--max-epochs", type=int, default=None)
    opt.add_argument("--batch-size", type=int, default=None,
                     help="TOTAL batch per optimiser step, split over devices x nodes x --accumulate")
    opt.add_argument("--accumulate", type=int, default=None, help="gradient accumulation micro-batches per step")
    opt.add_argument("--learning-rate", type=float, default=None)
    opt.add_argument("--segment-size", type=int, default=None, help="training crop in samples (multiple of the hop)")
    opt.add_argument("--seed", type=int, default=None)
    opt.add_argument("--num-workers", type=int, default=None, help="data loader workers per process")
    opt.add_argument("--ema-decay", type=float, default=None, help="EMA of the generator (e.g. 0.999; 0 = off)")
    opt.add_argument("--checkpoint-every", type=int, default=None, help="checkpoint every N steps")
    opt.add_argument("--keep-checkpoints", type=int, default=None, help="keep the newest K checkpoints")
    opt.add_argument("--val-every", type=int, default=None, help="validate every N steps")
    opt.add_argument("--log-every", type=int, default=None, help="log training scalars every N steps")
    opt.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="any other setting, e.g. --set training.lr_decay=0.9998 (repeatable)")
    run_group = parser.add_argument_group("run")
    run_group.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                           help="require resuming (from the newest checkpoint of --out, or from CHECKPOINT; "
                                "newer checkpoints are then moved to OUT/previous-<time>/); without it an "
                                "existing run resumes anyway")
    run_group.add_argument("--restart", action="store_true",
                           help="start over at step 0 even though --out holds a run (for one whose checkpoints "
                                "are all unreadable); its files are moved to OUT/previous-<time>/, not deleted")
    run_group.add_argument("--max-bad-fraction", type=float, default=None, metavar="FRACTION",
                           help="stop when more than this fraction of the data files is unusable (default 0.05)")
    run_group.add_argument("--max-val-utterances", type=int, default=None,
                           help="validate on the first N utterances of the validation list only")
    run_group.add_argument("--no-progress", action="store_true", help="no progress bar (batch jobs)")


def parse_sets(sets: list[str]) -> dict[str, Any]:
    """`--set SECTION.KEY=VALUE` options as overrides (values parsed as YAML scalars)."""
    import yaml

    from hifigan.errors import ConfigError

    overrides: dict[str, Any] = {}
    for text in sets:
        key, sep, value = text.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. training.lr_decay=0.9998")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line options as `section.key -> value` overrides of the recipe."""
    overrides = parse_sets(args.sets)
    direct = {
        "training.precision": args.precision,
        "training.max_steps": args.max_steps,
        "training.max_epochs": args.max_epochs,
        "training.batch_size": args.batch_size,
        "training.accumulate_grad_batches": args.accumulate,
        "training.learning_rate": args.learning_rate,
        "training.segment_size": args.segment_size,
        "training.seed": args.seed,
        "training.num_workers": args.num_workers,
        "training.ema_decay": args.ema_decay,
        "training.checkpoint_every_n_steps": args.checkpoint_every,
        "training.keep_checkpoints": args.keep_checkpoints,
        "training.val_every_n_steps": args.val_every,
        "training.log_every_n_steps": args.log_every,
        "training.fp32_grouped_convs": args.fp32_grouped_convs,
        "training.tf32": False if args.no_tf32 else None,
    }
    overrides.update({k: v for k, v in direct.items() if v is not None})
    return overrides


def run_options_from(args: argparse.Namespace, mel_dir: Any = None):
    from hifigan.training import RunOptions

    devices: Any = args.devices
    if isinstance(devices, str) and devices.isdigit():
        devices = int(devices)
    return RunOptions(
        devices=devices,
        num_nodes=args.num_nodes,
        accelerator=args.accelerator,
        resume=args.resume,
        restart=args.restart,
        max_failure_fraction=args.max_bad_fraction,
        val=args.val,
        mel_dir=mel_dir,
        max_val_utterances=args.max_val_utterances,
        progress_bar=not args.no_progress,
    )


def report(result) -> None:
    if result is None:
        return
    lines = [f"run: {result.run_dir}  step {result.step}, epoch {result.epoch}"]
    if result.val_mel_l1 is not None:
        lines.append(f"validation mel L1: {result.val_mel_l1:.4f}")
    if result.skipped_steps:
        lines.append(f"skipped non-finite steps: {result.skipped_steps}")
    if result.checkpoint:
        lines.append(f"checkpoint: {result.checkpoint}")
    if result.generator:
        lines.append(f"generator export: {result.generator}")
    print("\n".join(lines))


def run(args: argparse.Namespace) -> int:
    from hifigan.training import is_global_zero, train

    result = train(args.config, args.data, args.out, run_options_from(args), overrides=overrides_from(args))
    if is_global_zero():
        report(result)
    return 0
