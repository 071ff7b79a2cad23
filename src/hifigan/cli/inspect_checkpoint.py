"""`hifigan inspect FILE`: what a checkpoint is and what was read from it."""
from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="show what a checkpoint is: toolkit, files read, config, mel front end, sample rate",
        description="Read a generator checkpoint of any supported toolkit (ours, the authors', NVIDIA, "
                    "ParallelWaveGAN/ESPnet, Coqui, SpeechBrain, NeMo) and show what was read.",
    )
    parser.add_argument("checkpoint", help="checkpoint file (or a toolkit's model folder)")
    parser.add_argument("--config", default=None, help="preset or config file, for files that carry none")
    parser.add_argument("--json", action="store_true", help="print the resolved config as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hifigan.audio.frontends import describe_frontend
    from hifigan.checkpoints import load_generator
    from hifigan.checkpoints.formats import format_named

    generator, config, imported = load_generator(args.checkpoint, config=args.config, return_import=True)
    if args.json:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    fmt = format_named(imported.format)
    g, a = config.generator, config.audio
    print(f"{args.checkpoint}")
    print(f"  toolkit:      {fmt.toolkit} (format {fmt.name})")
    print(f"  files read:   {', '.join(str(p) for p in imported.files)}")
    print(f"  sample rate:  {a.sampling_rate} Hz, hop {a.hop_length} samples ({a.frame_ms:.2f} ms per frame)")
    print(f"  mel:          {describe_frontend(a)}")
    extras = []
    if g.conv_padding_mode != "zeros":
        extras.append(f"{g.conv_padding_mode} padding")
    if g.inference_padding:
        extras.append(f"its toolkit's inference pads {g.inference_padding} frames (toolkit_padding=True)")
    print(f"  generator:    ResBlock{g.resblock}, upsampling {g.upsample_rates} (kernels "
          f"{g.upsample_kernel_sizes}), {g.upsample_initial_channel} channels, resblock kernels "
          f"{g.resblock_kernel_sizes}, {generator.num_parameters():,} parameters"
          + (f"; {'; '.join(extras)}" if extras else ""))
    for note in imported.notes:
        print(f"  note:         {note}")
    return 0
