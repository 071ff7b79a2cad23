"""Export a generator to TorchScript or ONNX, for serving without this package.

Both exports take a mel [batch, n_mels, frames] and return audio
[batch, 1, frames * hop], with the batch and time axes dynamic. Weight norm is
folded first and the export runs in float32 on CPU. The model's config travels
inside the file (TorchScript: an extra file `hifigan_config.json`; ONNX: the
metadata entry `hifigan_config`), so a `Vocoder` can be rebuilt from an ONNX
file alone, with the right mel settings.

ONNX uses the torch.export-based exporter at opset 18: the lowest opset it
emits, which keeps the file loadable by onnxruntime 1.14 and later (tested with
1.32). TorchScript uses tracing: the generator has no data-dependent control
flow, so one trace serves every batch size and length.
"""
from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional, Union

import torch

from ..config import HiFiGANConfig
from ..errors import CheckpointError, ConfigError, HiFiGANError, first_line
from ..models import Generator

ONNX_OPSET = 18
CONFIG_KEY = "hifigan_config"
TORCHSCRIPT_CONFIG_FILE = "hifigan_config.json"
INPUT_NAME = "mel"
OUTPUT_NAME = "audio"
FORMATS = ("torchscript", "onnx")
ExportFormat = Literal["torchscript", "onnx"]


@dataclass
class ExportResult:
    """Where the export went and how far it is from eager PyTorch on a test mel."""

    path: Path
    format: str
    max_abs_diff: float
    test_shapes: list[tuple[int, ...]]


def _export_copy(generator: Generator) -> Generator:
    """A float32 CPU copy with weight norm folded (the caller's module is untouched).

    Rebuilt from the state dict rather than deep-copied: a deep copy of a
    parametrized module shares its generated class with the original, and
    folding the copy would strip the original's `weight`.
    """
    from ..checkpoints import load_state_checked

    model = Generator(generator.config, n_mels=generator.n_mels)
    state = {k: v.detach().float().cpu() for k, v in generator.state_dict().items()}
    load_state_checked(model, state, "generator")
    model.eval()
    if model.has_weight_norm:
        model.fold_weight_norm()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def _example(generator: Generator, batch: int = 2, frames: int = 16) -> torch.Tensor:
    generator_ = torch.Generator().manual_seed(0)
    return torch.randn(batch, generator.n_mels, frames, generator=generator_) - 5.0


def export_torchscript(generator: Generator, config: HiFiGANConfig, path: str | Path) -> Path:
    """Trace the generator and save it with its config; load with `torch.jit.load`."""
    path = Path(path)
    model = _export_copy(generator)
    with warnings.catch_warnings():
        # torch.jit is deprecated in recent torch, but TorchScript files remain the
        # format many C++/Triton servers load; the trace is still exact.
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, _example(model), check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={TORCHSCRIPT_CONFIG_FILE: json.dumps(config.to_dict())})
    return _write_file(path, buffer.getvalue())


def load_torchscript(path: str | Path) -> tuple[torch.jit.ScriptModule, Optional[HiFiGANConfig]]:
    """A TorchScript export and the config saved inside it (None if it has none)."""
    extra = {TORCHSCRIPT_CONFIG_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        except Exception as exc:
            raise CheckpointError(f"{path}: not a TorchScript file ({first_line(exc)})") from None
    text = extra[TORCHSCRIPT_CONFIG_FILE]
    config = HiFiGANConfig.from_dict(json.loads(text), source=f"config in {path}") if text else None
    return module, config


def onnx_model_bytes(generator: Generator, config: HiFiGANConfig, opset: int = ONNX_OPSET) -> bytes:
    """The generator as a serialized ONNX model (dynamic batch and time), config in its metadata."""
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import onnxscript  # noqa: F401
    except ImportError:
        raise ConfigError(
            'ONNX export needs the onnx extra: pip install "hifigan[onnx]"'
        ) from None
    model = _export_copy(generator)
    dims = {0: torch.export.Dim("batch", min=1), 2: torch.export.Dim("frames", min=1)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            (_example(model),),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={INPUT_NAME: dims},
            opset_version=opset,
            verbose=False,
        )
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key = CONFIG_KEY
    entry.value = json.dumps(config.to_dict())
    proto.producer_name = "hifigan"
    return proto.SerializeToString()


def export_onnx(generator: Generator, config: HiFiGANConfig, path: str | Path, opset: int = ONNX_OPSET) -> Path:
    """Write the generator as an ONNX file (see `onnx_model_bytes`)."""
    return _write_file(Path(path), onnx_model_bytes(generator, config, opset))


def _write_file(path: Path, data: bytes) -> Path:
    """An export's bytes to a temporary name beside `path`, then renamed (`files.atomic_write_bytes`):
    a failure leaves no half-written model; it is a ConfigError naming the file."""
    from ..files import atomic_write_bytes

    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a file name for the export")
    try:
        return atomic_write_bytes(path, data)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the export ({exc.strerror or first_line(exc)})") from None


def export_safetensors(generator: Generator, config: HiFiGANConfig, path: str | Path) -> Path:
    """The folded float32 weights as plain tensors, the config in the metadata (`hifigan_config`).

    A safetensors file holds no code, so loading it (`load_generator`, the
    safetensors importer) runs none; the same bytes go into Hub repos
    (`hifigan.hub.save_pretrained`). Written to a temporary name and renamed.
    """
    try:
        from safetensors.torch import save
    except ImportError:
        raise ConfigError('safetensors export needs the hub extra: pip install "hifigan[hub]"') from None
    from ..files import atomic_write_bytes

    tensors = {key: value.contiguous() for key, value in _export_copy(generator).state_dict().items()}
    metadata = {"format": "hifigan", CONFIG_KEY: json.dumps(config.to_dict())}
    return atomic_write_bytes(path, save(tensors, metadata=metadata))


def onnx_session(model: Union[str, Path, bytes], threads: Optional[int] = None) -> Any:
    """An onnxruntime CPU session for an exported generator (a file path or model bytes)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError('running ONNX models needs onnxruntime: pip install "hifigan[onnx]"') from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        where = "the exported model" if isinstance(model, bytes) else str(model)
        raise CheckpointError(f"{where}: onnxruntime cannot load it ({first_line(exc)})") from None


def onnx_config(session: Any, source: str) -> HiFiGANConfig:
    """The config an exported ONNX generator carries in its metadata."""
    metadata = session.get_modelmeta().custom_metadata_map
    if CONFIG_KEY not in metadata:
        raise CheckpointError(
            f"{source}: this ONNX model carries no '{CONFIG_KEY}' metadata; it was not exported by "
            "`hifigan export`, so its mel settings are unknown"
        )
    inputs = [node.name for node in session.get_inputs()]
    if inputs != [INPUT_NAME]:
        raise CheckpointError(f"{source}: the ONNX model takes inputs {inputs}, not one '{INPUT_NAME}' "
                              "as `hifigan export` writes")
    try:
        data = json.loads(metadata[CONFIG_KEY])
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        return HiFiGANConfig.from_dict(data, source=f"config in {source}")
    except HiFiGANError:
        raise
    except (TypeError, ValueError) as exc:  # bad JSON, or a value of the wrong type in a section
        raise CheckpointError(f"{source}: its '{CONFIG_KEY}' metadata is not a valid config "
                              f"({first_line(exc)})") from None


def export(
    generator: Generator,
    config: HiFiGANConfig,
    format: ExportFormat,
    path: str | Path,
    *,
    verify: bool = True,
) -> ExportResult:
    """Export, then (by default) run the file on test mels and compare with eager PyTorch."""
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; formats are {', '.join(FORMATS)}")
    path = Path(path)
    if format == "torchscript":
        export_torchscript(generator, config, path)
    else:
        export_onnx(generator, config, path)
    shapes = [(1, generator.n_mels, 7), (2, generator.n_mels, 23)]
    diff = float("nan")
    if verify:
        diff = max(compare_with_eager(generator, path, format, shape) for shape in shapes)
    return ExportResult(path=path, format=format, max_abs_diff=diff, test_shapes=shapes)


def compare_with_eager(generator: Generator, path: str | Path, format: ExportFormat,
                       shape: tuple[int, ...], seed: int = 1) -> float:
    """Max |exported - eager| on one random mel of `shape` (float32, CPU)."""
    model = _export_copy(generator)  # outside inference mode: folding weight norm needs autograd tensors
    mel = torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) - 5.0
    with torch.inference_mode():
        expected = model(mel)
        if format == "torchscript":
            module, _ = load_torchscript(path)
            got = module(mel)
        else:
            session = onnx_session(path)
            got = torch.from_numpy(session.run(None, {INPUT_NAME: mel.numpy()})[0])
    return float((got - expected).abs().max())


