"""`hifigan bench synth`: synthesis speed of every path (torch, fast, onnx, compile, bf16...) side by side."""
from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="synthesis speed (samples/s, x real time, memory) of every synthesis path",
        description="Time the eager float32 generator (torch fp32) and every faster path (fast: exact FFT "
        "convolutions, onnx: ONNX Runtime, openvino: OpenVINO where installed, compile: torch.compile, "
        "bf16/fp16, cuda-graph) on the same real-speech mel, interleaved, and check each path's audio "
        "against torch fp32.",
    )
    parser.add_argument("--config", default=None,
                        help="preset (v1, v2, v3) or config file (default: v1; with --checkpoint: its own)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--checkpoint", "-c", help="generator checkpoint (default: random weights)")
    source.add_argument("--model", "-m", help="pretrained model name, e.g. universal-v1, or a Hub repo owner/name")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=1, help="mels per call (default 1)")
    parser.add_argument("--seconds", type=float, default=10.0, help="audio seconds per mel (default 10)")
    parser.add_argument("--rounds", type=int, default=5, help="timed interleaved rounds (default 5)")
    parser.add_argument("--paths", default=None,
                        help="comma-separated paths besides torch fp32, e.g. fast,onnx,torch-bf16 "
                        "(names as for synthesize --backend, plus compile, cuda-graph and openvino; fft, eager and "
                        "onnxruntime are accepted too; a kernel after ':' pins fast: fast-bf16:amx / "
                        "fast-bf16:fft, fast:avx512 / fast:avx2 / fast:neon (a native build) / fast:pytorch "
                        "(no C kernel); default: all for the device)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument("--quality", nargs="+", metavar="AUDIO", default=None,
                        help="also copy-synthesize these clips (files or folders) with the bf16 CPU paths "
                        "and report mel L1 and wide-band PESQ against torch fp32")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from hifigan.checkpoints import load_generator
    from hifigan.config import resolve_config
    from hifigan.errors import ConfigError
    from hifigan.inference import bench
    from hifigan.models import Generator

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise ConfigError(f"--device {args.device!r}: not a device (cpu, cuda, cuda:1...)") from None
    paths = bench.parse_paths(args.paths, device) if args.paths else None
    quality_files, quality_paths = None, None
    if args.quality:
        quality_files = [str(p) for p in _expand(args.quality)]
        # the bf16 CPU paths, whatever device is timed; by default without compile, which
        # recompiles for every clip length and computes what torch bf16 does
        cpu = torch.device("cpu")
        candidates = bench.parse_paths(args.paths, cpu) if args.paths else [
            s for s in bench.default_paths(cpu) if s.method != "compile"]
        quality_paths = [s for s in candidates if s.dtype == torch.bfloat16]
        if not quality_paths:
            raise ConfigError("--quality: no bf16 path selected (see --paths)")
    if args.model:
        from hifigan.pretrained import load_pretrained

        if args.config:
            raise ConfigError("--config goes with --checkpoint or random weights, not with a pretrained --model")
        generator, config = load_pretrained(args.model)
        weights = f"pretrained {args.model}"
    elif args.checkpoint:
        generator, config = load_generator(args.checkpoint, config=args.config, return_config=True)
        weights = f"checkpoint {Path(args.checkpoint).name}"
    else:
        config = resolve_config(args.config or "v1")
        torch.manual_seed(0)
        generator = Generator(config.generator, n_mels=config.audio.n_mels)
        weights = "random weights"
    report = bench.run_synth_benchmark(generator, config, device=device, batch_size=args.batch_size,
                                       seconds=args.seconds, rounds=args.rounds, paths=paths, weights=weights,
                                       progress=not args.quiet)
    print(report.table())
    payload = {"benchmark": report.to_dict()}
    if quality_files:
        quality = bench.quality_check(generator, config, quality_files, quality_paths, progress=not args.quiet)
        print()
        print(f"quality vs torch fp32 ({weights}, {len(quality_files)} clips, copy synthesis):")
        print(bench.quality_table(quality))
        payload["quality"] = [q.__dict__ for q in quality]
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=2, default=str))
    return 0


def _expand(items: list[str]) -> list:
    """--quality's clips: files as given, folders searched recursively (the one expander)."""
    from hifigan.audio import AUDIO_SUFFIXES, expand_paths
    from hifigan.errors import DataError

    try:
        return expand_paths(items, AUDIO_SUFFIXES)
    except DataError as exc:
        raise DataError(f"--quality: {exc}") from None
