"""`hifigan export`: a generator as TorchScript or ONNX, checked against eager PyTorch."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a generator to TorchScript or ONNX (dynamic batch and length)",
        description=(
            "Write the generator (weight norm folded, float32) as TorchScript or ONNX with its config "
            "inside, then run the file on test mels and print its largest difference from PyTorch."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", "-c", help="generator checkpoint (ours, the authors', NVIDIA's)")
    source.add_argument("--model", "-m", help="pretrained model name (see `hifigan models`)")
    parser.add_argument("--config", help="config (preset or file) for a checkpoint that has none")
    parser.add_argument("--format", "-f", required=True, choices=["torchscript", "onnx"])
    parser.add_argument("--out", "-o", required=True, help="output file (.pt/.ts for TorchScript, .onnx)")
    parser.add_argument("--no-verify", action="store_true", help="skip the comparison with eager PyTorch")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hifigan.checkpoints import load_generator
    from hifigan.errors import ConfigError
    from hifigan.inference.export import export

    if args.checkpoint:
        generator, config = load_generator(args.checkpoint, config=args.config, return_config=True)
    else:
        if args.config:
            raise ConfigError("--config goes with --checkpoint, not with a pretrained --model")
        from hifigan.pretrained import load_pretrained

        generator, config = load_pretrained(args.model)
    result = export(generator, config, args.format, args.out, verify=not args.no_verify)
    size_mb = result.path.stat().st_size / 1e6
    print(f"wrote {result.format} model {result.path} ({size_mb:.1f} MB): mel [batch, {config.audio.n_mels}, "
          f"frames] -> audio [batch, 1, frames x {config.audio.hop_length}] at {config.audio.sampling_rate} Hz")
    if not args.no_verify:
        shapes = ", ".join("x".join(map(str, s)) for s in result.test_shapes)
        print(f"max |exported - eager| on test mels ({shapes}): {result.max_abs_diff:.2e}")
    return 0
