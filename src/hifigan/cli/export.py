"""`hifigan export`: a generator as TorchScript, ONNX or safetensors, checked against eager PyTorch."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a generator to TorchScript or ONNX (dynamic batch and length), or safetensors",
        description=(
            "Write the generator (weight norm folded, float32) as TorchScript or ONNX with its config "
            "inside, or as safetensors (a .safetensors file, or a Hugging Face Hub model folder: "
            "config.json, model.safetensors and a model card README.md), then run the file on test mels "
            "and print its largest difference from PyTorch."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", "-c", help="generator checkpoint (ours, the authors', NVIDIA's)")
    source.add_argument("--model", "-m", help="pretrained model name (see `hifigan models`) or a Hugging Face "
                        "Hub repo owner/name[@revision]")
    parser.add_argument("--config", help="config (preset or file) for a checkpoint that has none")
    parser.add_argument("--format", "-f", required=True, choices=["torchscript", "onnx", "safetensors"])
    parser.add_argument("--out", "-o", required=True,
                        help="output file (.pt/.ts for TorchScript, .onnx); for safetensors a .safetensors file "
                             "or a folder to upload to the Hub (e.g. `hf upload owner/name FOLDER`)")
    parser.add_argument("--training-data", default=None,
                        help="what the model was trained on, for the model card of a safetensors folder")
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
    if args.format == "safetensors":
        return _safetensors(args, generator, config)
    result = export(generator, config, args.format, args.out, verify=not args.no_verify)
    size_mb = result.path.stat().st_size / 1e6
    print(f"wrote {result.format} model {result.path} ({size_mb:.1f} MB): mel [batch, {config.audio.n_mels}, "
          f"frames] -> audio [batch, 1, frames x {config.audio.hop_length}] at {config.audio.sampling_rate} Hz")
    if not args.no_verify:
        shapes = ", ".join("x".join(map(str, s)) for s in result.test_shapes)
        print(f"max |exported - eager| on test mels ({shapes}): {result.max_abs_diff:.2e}")
    return 0


def _safetensors(args: argparse.Namespace, generator, config) -> int:
    """A lone .safetensors file (config in its metadata), else a Hub model folder with its card."""
    from pathlib import Path

    import torch

    from hifigan import hub
    from hifigan.checkpoints import load_generator
    from hifigan.inference.export import export_safetensors

    out = Path(args.out)
    if out.suffix == ".safetensors":
        path = export_safetensors(generator, config, out)
    else:
        # from a checkpoint path, save_pretrained fills the card from its run directory, if any
        model = args.checkpoint if args.checkpoint else generator
        card = None if args.checkpoint else hub.model_card(args.model)
        hub.save_pretrained(model, out, config=args.config if args.checkpoint else config, card=card,
                            training_data=args.training_data)
        path = out / hub.WEIGHTS_NAME
    print(f"wrote safetensors model {out} ({path.stat().st_size / 1e6:.1f} MB): {config.audio.n_mels}-band mel "
          f"at {config.audio.sampling_rate} Hz, hop {config.audio.hop_length}")
    if not args.no_verify:
        mel = torch.randn(2, config.audio.n_mels, 23, generator=torch.Generator().manual_seed(1)) - 5.0
        with torch.inference_mode():
            diff = float((load_generator(path)(mel) - generator(mel)).abs().max())
        print(f"max |saved - original| on a test mel (2x{config.audio.n_mels}x23): {diff:.2e}")
    return 0
