"""`hifigan finetune`: continue training trained weights on new data or on a TTS model's mels."""
from __future__ import annotations

import argparse

from .train import add_run_arguments, overrides_from, report, run_options_from

EPILOG = """\
examples:
  hifigan finetune --from universal-v1 --data corpus/ --out runs/ft --precision bf16-mixed
  hifigan finetune --from runs/v1/checkpoints/step-00100000.ckpt --data corpus/ --mels tts_mels/ --out runs/ft
  hifigan finetune --from cp_hifigan/g_02500000 --data corpus/ --out runs/ft   (uses do_02500000 beside it)
  hifigan finetune --from hifigan_gen_checkpoint_6500.pt --data LJSpeech-1.1/ --mels mels/ --out runs/ft
      (NVIDIA's: recipe v1-nvidia, schedule from its train_state epoch, 3500 epochs)
Without --mels, mels are computed from the audio (copy-synthesis fine-tuning).
Re-running the same command on the same --out resumes that run.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a trained generator (ours, the authors', or a published model)",
        description="Fine-tune from our checkpoint, the authors' g_/do_ files or a registered model, on "
        "(generated mel, real audio) pairs (--mels) or on real audio alone, with the recipe's "
        "learning-rate handling (see docs/readme/training.md).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--from", dest="source", required=True,
                        help="a registered model name (universal-v1, lj-v1), our checkpoint or export, "
                             "the authors' g_ file, NVIDIA's hifigan_gen_checkpoint_<epoch>.pt, or a "
                             "Hugging Face Hub repo owner/name[@revision]")
    parser.add_argument("--data", required=True, help="data folder with the real audio")
    parser.add_argument("--mels", default=None,
                        help="folder of generated mels named after the audio (<stem>.npy / .pt, [n_mels, frames])")
    parser.add_argument("--config", default=None,
                        help="recipe for the training settings (default: the checkpoint's own, v1-nvidia for "
                             "an NVIDIA checkpoint, else the authors' recipe of its version); its model must fit "
                             "the checkpoint")
    disc = parser.add_mutually_exclusive_group()
    disc.add_argument("--discriminators", default=None,
                      help="the authors' do_ file (or NVIDIA's hifigan_discrim_checkpoint_<epoch>.pt) to start "
                           "the discriminators from")
    disc.add_argument("--fresh-discriminators", action="store_true",
                      help="start the discriminators from scratch even when the source has some")
    add_run_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    source = args.source
    from hifigan.training import is_global_zero
    from hifigan.training.finetune import finetune

    result = finetune(
        source,
        args.data,
        args.out,
        run_options_from(args, mel_dir=args.mels),
        config=args.config,
        overrides=overrides_from(args),
        discriminators=args.discriminators,
        fresh_discriminators=args.fresh_discriminators,
    )
    if is_global_zero():
        report(result)
    return 0
