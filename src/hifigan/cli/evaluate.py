"""`hifigan evaluate`: copy-synthesis metrics of a model on real clips, beside Griffin-Lim."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="objective metrics of copy synthesis (mel L1, MR-STFT, PESQ, STOI, MCD, pitch) vs Griffin-Lim",
        description=(
            "Copy-synthesise each clip (its mel through the generator), score it against the original "
            "(mel L1, multi-resolution STFT, PESQ-WB, STOI, MCD, F0 RMSE, V/UV F1) beside Griffin-Lim from "
            "the same mel, and write metrics.json, metrics.csv and spectrogram PNGs."
        ),
    )
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="generator checkpoint: ours or the authors' g_ file")
    model.add_argument("--model", help="a published model by name (see `hifigan models`), e.g. universal-v1, "
                       "or a Hugging Face Hub repo owner/name[@revision]")
    parser.add_argument("audio", nargs="+", metavar="AUDIO",
                        help="audio files, folders (searched recursively) or .txt lists of paths relative to the list")
    parser.add_argument("--out", default="evaluation", help="output folder (default: ./evaluation)")
    parser.add_argument("--baseline", default="griffin-lim", choices=["griffin-lim", "none"],
                        help="reference system scored on the same mels (default: griffin-lim)")
    parser.add_argument("--gl-iters", type=int, default=32, help="Griffin-Lim iterations (default: 32)")
    parser.add_argument("--plots", type=int, default=3, help="spectrogram PNGs for the first N clips (default: 3)")
    parser.add_argument("--jobs", type=int, default=2,
                        help="worker processes for Griffin-Lim and the metrics (default: 2)")
    parser.add_argument("--no-normalize", action="store_true",
                        help="keep each file's level (default: peak-normalise to 0.95 as the authors' loader)")
    parser.add_argument("--save-audio", action="store_true",
                        help="also write the original, generated and Griffin-Lim audio under OUT/audio")
    parser.add_argument("--config", help="config for an authors' checkpoint without config.json (preset or file)")
    parser.add_argument("--device", help="torch device for the generator (default: cuda if available)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16", "auto"],
                        help="generator precision (default: float32, so scores do not depend on the device)")
    parser.add_argument("--summary-only", action="store_true", help="print only the mean +- 95%% CI rows")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hifigan.errors import ConfigError
    from hifigan.evaluation import EvaluationSettings, GriffinLimSettings, evaluate, expand_audio_arguments
    from hifigan.inference import Vocoder

    if args.gl_iters < 1:
        raise ConfigError(f"--gl-iters must be at least 1, got {args.gl_iters}")
    paths = expand_audio_arguments(args.audio)
    where = {"device": args.device, "dtype": args.dtype}
    if args.model:
        if args.config:
            raise ConfigError("--config applies to --checkpoint only; a published model brings its own")
        vocoder = Vocoder.from_pretrained(args.model, **where)
        label = args.model
    else:
        vocoder = Vocoder.from_checkpoint(args.checkpoint, config=args.config, **where)
        label = str(args.checkpoint)
    settings = EvaluationSettings(
        baseline=None if args.baseline == "none" else args.baseline,
        griffin_lim=GriffinLimSettings(iterations=args.gl_iters),
        peak_normalize=None if args.no_normalize else 0.95,
        plots=args.plots,
        jobs=args.jobs,
        save_audio=args.save_audio,
    )
    report = evaluate(vocoder, paths, out_dir=args.out, settings=settings, model_label=label)
    print(f"model: {label} ({vocoder.config.name}, {vocoder.sampling_rate} Hz); {len(paths)} clips")
    print(report.format_table(per_file=not args.summary_only))
    print()
    for kind, path in report.files.items():
        if path:
            print(f"wrote {kind}: {path}")
    return 0
