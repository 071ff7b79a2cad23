"""ESPnet's ParallelWaveGAN (kan-bayashi/ParallelWaveGAN) `HiFiGANGenerator` checkpoints.

Its trainer saves `checkpoint-<N>steps.pkl` with torch.save: {"model":
{"generator", "discriminator"}, "optimizer", "scheduler", "steps", "epochs"}
(a `collections.Counter` in the scheduler state), and writes `config.yml` in
the experiment folder; normalisation statistics are `stats.h5` (datasets
"mean" and "scale" of a StandardScaler) or `stats.npy` in the dump folder.

Generator keys: `input_conv` (conv_pre), `upsamples.<i>.1` (after the
LeakyReLU at index 0), `blocks.<level * K + k>.convs1/convs2.<j>.1`,
`output_conv.1`; weight norm as weight_g/weight_v. Numerically it is our
generator: odd upsampling rates pad u // 2 + u % 2 with output padding u % 2,
which `GeneratorConfig.upsample_padding` also gives.

Front end (parallel_wavegan/bin/preprocess.py `logmelfilterbank`): librosa
STFT centred with reflect padding, |X| without epsilon, librosa Slaney mel
filters (fmin None = 0, fmax None = Nyquist), log10 of max(mel, 1e-10); then
(mel - mean) / scale per band (normalize.py), which the vocoder consumes.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ...config import AudioConfig, GeneratorConfig, HiFiGANConfig, TrainingConfig
from ...errors import CheckpointError, ConfigError
from ..source import CheckpointSource, read_yaml
from .base import CheckpointFormat, ImportedGenerator, StateDict

_BLOCK = re.compile(r"^blocks\.(\d+)\.(convs1|convs2)\.(\d+)\.1\.(.*)$")
_RENAMES = ((re.compile(r"^input_conv\.(.*)$"), r"conv_pre.\1"),
            (re.compile(r"^upsamples\.(\d+)\.1\.(.*)$"), r"ups.\1.\2"),
            (re.compile(r"^output_conv\.1\.(.*)$"), r"conv_post.\1"))
_STATS_NAMES = ("stats.h5", "stats.npy", "../stats.h5", "../stats.npy")


def _generator_state(source: CheckpointSource) -> Optional[dict]:
    if source.kind not in ("torch-zip", "pickle"):
        return None
    data = source.data
    model = data.get("model") if isinstance(data, dict) else None
    if not isinstance(model, dict) or not isinstance(model.get("generator"), dict):
        return None
    return model["generator"]


def detect(source: CheckpointSource) -> bool:
    state = _generator_state(source)
    return state is not None and any(k.startswith(("input_conv.", "upsamples.")) for k in state)


def convert_state(state: dict, resblock: str) -> StateDict:
    """ParallelWaveGAN generator keys -> ours (the flat `resblocks.<level * K + k>` is the same order)."""
    out: StateDict = {}
    for key, value in state.items():
        if key in ("mean", "scale"):  # statistics registered for normalize_before: not weights
            continue
        match = _BLOCK.match(key)
        if match:
            block, conv, index, leaf = match.groups()
            name = conv if resblock == "1" else "convs"
            out[f"resblocks.{block}.{name}.{index}.{leaf}"] = value
            continue
        for pattern, replacement in _RENAMES:
            if pattern.match(key):
                out[pattern.sub(replacement, key)] = value
                break
        else:
            raise CheckpointError(f"unexpected ParallelWaveGAN generator key {key!r}")
    return out


def config_from_yaml(data: dict[str, Any], where: str, stats: Optional[tuple[list, list]]) -> HiFiGANConfig:
    """Our config from ParallelWaveGAN's config.yml (generator_params + the feature settings)."""
    kind = data.get("generator_type", "ParallelWaveGANGenerator")
    if kind != "HiFiGANGenerator":
        raise CheckpointError(f"{where}: generator_type {kind} is not a HiFi-GAN (only HiFiGANGenerator is read)")
    params = data.get("generator_params") or {}
    unsupported = {
        "kernel_size": 7, "bias": True, "use_causal_conv": False, "nonlinear_activation": "LeakyReLU",
        "out_channels": 1,
    }
    for name, value in unsupported.items():
        if params.get(name, value) != value:
            raise CheckpointError(f"{where}: generator_params.{name} = {params[name]!r} is not supported "
                                  f"(only {value!r}, as HiFi-GAN)")
    slope = (params.get("nonlinear_activation_params") or {}).get("negative_slope", 0.1)
    if slope != 0.1:
        raise CheckpointError(f"{where}: a LeakyReLU slope of {slope} is not supported (HiFi-GAN uses 0.1)")
    try:
        generator = GeneratorConfig(
            resblock="1" if params.get("use_additional_convs", True) else "2",
            upsample_rates=[int(v) for v in params.get("upsample_scales", [8, 8, 2, 2])],
            upsample_kernel_sizes=[int(v) for v in params.get("upsample_kernel_sizes", [16, 16, 4, 4])],
            upsample_initial_channel=int(params.get("channels", 512)),
            resblock_kernel_sizes=[int(v) for v in params.get("resblock_kernel_sizes", [3, 7, 11])],
            resblock_dilation_sizes=[[int(d) for d in ds] for ds in
                                     params.get("resblock_dilations", [[1, 3, 5]] * 3)],
        )
        n_fft = int(data["fft_size"])
        window = data.get("window", "hann")
        if window not in ("hann", "hann_window"):
            raise CheckpointError(f"{where}: window {window!r} is not supported (only hann)")
        audio = AudioConfig(
            sampling_rate=int(data["sampling_rate"]),
            n_fft=n_fft,
            hop_length=int(data["hop_size"]),
            win_length=int(data.get("win_length") or n_fft),
            n_mels=int(data.get("num_mels", params.get("in_channels", 80))),
            fmin=float(data.get("fmin") or 0.0),
            fmax=None if data.get("fmax") is None else float(data["fmax"]),
            fmax_for_loss=None,
        )
        from ...audio.frontends import with_frontend

        if stats is not None:
            audio = with_frontend(audio, "parallel-wavegan", norm_mean=stats[0], norm_scale=stats[1])
        else:
            audio = with_frontend(audio, "parallel-wavegan", normalize=None)
        name = Path(str(data.get("outdir", "parallel-wavegan"))).name or "parallel-wavegan"
        hop = audio.hop_length
        segment = max(hop, int(data.get("batch_max_steps", 32 * hop)) // hop * hop)  # its training crop
        return HiFiGANConfig(name=name, audio=audio, generator=generator,
                             training=TrainingConfig(segment_size=segment)).validate()
    except KeyError as exc:
        raise CheckpointError(f"{where}: missing setting {exc.args[0]!r}") from None
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: settings not usable: {exc}") from None


def read_stats(path: Path) -> tuple[list, list]:
    """(mean, scale) per band from stats.h5 or stats.npy (ParallelWaveGAN's compute_statistics)."""
    try:
        if path.suffix == ".npy":
            array = np.load(path, allow_pickle=False)
            mean, scale = array[0], array[1]
        else:
            try:
                import h5py
            except ImportError:
                raise CheckpointError(f"{path}: reading stats.h5 needs h5py (pip install h5py)") from None
            with h5py.File(path, "r") as handle:
                mean, scale = handle["mean"][()], handle["scale"][()]
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"{path}: not readable normalisation statistics ({exc})") from None
    return [float(v) for v in np.asarray(mean).reshape(-1)], [float(v) for v in np.asarray(scale).reshape(-1)]


def read(source: CheckpointSource) -> ImportedGenerator:
    state = _generator_state(source)
    files, notes = [source.path], []
    config: Optional[HiFiGANConfig] = None
    config_path = source.beside("config.yml", "config.yaml", "../config.yml")
    if config_path is None:
        notes.append("no config.yml beside the checkpoint: architecture from the tensor shapes, "
                     "front end unknown (the authors' assumed)")
        resblock = "1" if any(".convs2." in k for k in state) else "2"
    else:
        data = read_yaml(config_path)
        if not isinstance(data, dict):
            raise CheckpointError(f"{config_path}: expected a mapping of settings")
        stats_path = source.beside(*_STATS_NAMES)
        stats = read_stats(stats_path) if stats_path is not None else None
        if stats is None and "mean" in state and "scale" in state:  # registered with register_stats
            stats = ([float(v) for v in state["mean"].reshape(-1)], [float(v) for v in state["scale"].reshape(-1)])
            notes.append("normalisation statistics from the generator's registered mean/scale buffers")
        config = config_from_yaml(data, str(config_path), stats)
        files.append(config_path)
        if stats_path is not None:
            files.append(stats_path)
        elif stats is None:
            notes.append("no stats.h5 beside the checkpoint: the model's input is taken as the "
                         "unnormalised log10 mel (its own normalize_before); put stats.h5 beside it "
                         "to read normalised features")
        resblock = config.generator.resblock
    extra = {"steps": source.data.get("steps"), "epochs": source.data.get("epochs")}
    return ImportedGenerator(convert_state(state, resblock), config, "parallel-wavegan", files, notes, extra)


FORMAT = CheckpointFormat(
    name="parallel-wavegan", toolkit="ESPnet / ParallelWaveGAN",
    files="checkpoint-<N>steps.pkl + config.yml + stats.h5 (or stats.npy) beside it",
    detect=detect, read=read,
)
