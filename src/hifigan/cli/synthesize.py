"""`hifigan synthesize`: mel files or audio files (copy synthesis) -> wav files."""
from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    from hifigan.inference.fast import ALIASES
    from hifigan.inference.vocoder import BACKENDS

    parser = subparsers.add_parser(
        "synthesize",
        help="mel or audio files -> audio with a trained generator",
        description=(
            "Synthesize audio from mel files (.npy/.pt, [n_mels, frames], natural-log mels from this "
            "package's front end) or resynthesize audio files (copy synthesis), or folders of them. "
            "Without --checkpoint or --model, uses the pretrained universal-v1; without INPUT, "
            "the sample clips bundled with the package."
        ),
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="mel files, audio files or folders")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", "-c", help="generator checkpoint: ours, the authors' g_ file, "
                        "NVIDIA's, or an exported .onnx")
    source.add_argument("--model", "-m", help="pretrained model name (see `hifigan models`; "
                        "default universal-v1) or a Hugging Face Hub repo owner/name[@revision]")
    parser.add_argument("--config", help="config (preset or file) for a checkpoint that has none")
    parser.add_argument("--out", "-o", required=True, help="output folder")
    parser.add_argument("--batch-size", type=int, default=8, help="mels per generator call (default 8)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda if available)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                        help="generator precision (auto: float16 on CUDA, float32 on CPU)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, type=lambda name: ALIASES.get(name, name),
                        help="auto (default): the fast exact CPU kernels on CPU, PyTorch on CUDA; "
                             "fast, torch (eager PyTorch) or onnx (onnxruntime, CPU) pick one "
                             "(fft, eager and onnxruntime name the same paths)")
    parser.add_argument("--denoise", type=float, default=0.0, metavar="S",
                        help="bias denoiser strength, e.g. 0.005-0.1 (default 0: off)")
    parser.add_argument("--float", dest="float_wav", action="store_true",
                        help="write 32-bit float wav instead of 16-bit PCM")
    parser.add_argument("--plot", action="store_true",
                        help="also write <name>.png: input mel and output mel side by side")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist (an input file is never written over)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    from hifigan.errors import ConfigError
    from hifigan.inference import Vocoder
    from hifigan.audio import MelFileWarning
    from hifigan.inference.inputs import MelRangeWarning, collect_inputs
    from hifigan.inference.synthesis import bundled_samples, check_outputs, prepare_inputs, synthesize_files
    from hifigan.inference.vocoder import check_denoise

    check_denoise(args.denoise, "--denoise")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    inputs = args.inputs
    if not inputs:
        samples = bundled_samples()
        inputs = [samples]
        print(f"no INPUT given: resynthesizing the sample clips bundled in {samples}", file=sys.stderr)
    items = collect_inputs(inputs)
    # before the model loads: an output that would replace an input or an existing file stops the run
    check_outputs(items, args.out, plot=args.plot, overwrite=args.overwrite)
    options = dict(device=args.device, dtype=args.dtype, denoise=args.denoise, backend=args.backend)
    if args.backend == "onnx" and args.device is None:
        options["device"] = "cpu"
    if args.checkpoint:
        vocoder = Vocoder.from_checkpoint(args.checkpoint, config=args.config, **options)
        model = args.checkpoint
    else:
        if args.config:
            raise ConfigError("--config goes with --checkpoint, not with a pretrained --model")
        from hifigan.pretrained import DEFAULT_MODEL

        model = args.model or DEFAULT_MODEL
        vocoder = Vocoder.from_pretrained(model, **options)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MelRangeWarning)
        warnings.simplefilter("always", MelFileWarning)
        prepared = prepare_inputs(vocoder, items)
    for warning in caught:
        if issubclass(warning.category, (MelRangeWarning, MelFileWarning)):
            print(f"hifigan synthesize: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)

    summary = synthesize_files(
        vocoder, items, args.out, batch_size=args.batch_size, subtype="FLOAT" if args.float_wav else "PCM_16",
        plot=args.plot, progress=not args.quiet, prepared=prepared, overwrite=args.overwrite,
    )
    rtf = summary.real_time_factor
    speed = f"{1 / rtf:.1f}x faster than real time" if rtf and rtf < 1 else f"{rtf:.2f}x slower than real time"
    dtype = str(vocoder.dtype).replace("torch.", "")
    print(f"model: {model} ({vocoder.sampling_rate} Hz, {vocoder.backend} on {vocoder.device}, {dtype}"
          + (f", denoise {args.denoise:g}" if args.denoise else "") + ")")
    print(f"wrote {summary.files} file{'s' if summary.files != 1 else ''}, "
          f"{summary.audio_seconds:.1f} s of audio, to {args.out}"
          + (f" (+ {len(summary.plots)} spectrogram PNGs)" if summary.plots else ""))
    print(f"synthesis: {summary.synthesis_seconds:.2f} s, real-time factor {rtf:.3f} ({speed})")
    return 0
