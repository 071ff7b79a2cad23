"""Coqui TTS HiFi-GAN vocoders (TTS/vocoder/models/gan.py with hifigan_generator).

Its trainer saves `best_model.pth` / `checkpoint_<N>.pth` / `model_file.pth`
with torch.save: {"model": GAN state dict with `model_g.` (generator) and
`model_d.` keys, "config", "optimizer", "scaler", "step", "epoch", ...};
files of the original Coqui (0.0.x) hold the generator under "model" without
prefix and the discriminator under "model_disc". `config.json` beside the
file (JSON with // comments in older files) or the `config` inside gives
`generator_model_params` and the `audio` section.

The generator is numerically the authors'; its `inference()` replicates
`inference_padding` (5) frames at each end and keeps their audio. Front end
(TTS/utils/audio/processor.py `melspectrogram`): optional pre-emphasis,
librosa STFT centred (stft_pad_mode), |X|, librosa Slaney filters,
spec_gain x log_func(max(mel, 1e-8)) (np.log or np.log10; Coqui before 0.22
floored at 1e-5), then with signal_norm either mean/std from `stats_path`
or ((mel - ref_level_db) - min_level_db) / -min_level_db mapped to
[-max_norm, max_norm] (symmetric) or [0, max_norm] and clipped.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from ...config import AudioConfig, GeneratorConfig, HiFiGANConfig, TrainingConfig
from ...errors import CheckpointError, ConfigError
from ..safe_pickle import UnsafeCheckpoint, safe_npy_load
from ..source import CheckpointSource
from .base import CheckpointFormat, ImportedGenerator, StateDict, strip_prefix, tensors_only

LOG_FLOOR = 1e-8  # coqui-tts numpy_transforms.amp_to_db (1e-5 in Coqui TTS before 0.22)


def _generator_state(source: CheckpointSource) -> Optional[StateDict]:
    if source.kind not in ("torch-zip", "pickle"):
        return None
    data = source.data
    if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
        return None
    model = data["model"]
    state = strip_prefix(model, "model_g.")
    if state:
        return state
    if "model_disc" in data and tensors_only(model) and any(k.startswith("conv_pre.") for k in model):
        return dict(model)  # Coqui 0.0.x: generator and discriminator saved apart
    return None


def detect(source: CheckpointSource) -> bool:
    return _generator_state(source) is not None


def strip_json_comments(text: str) -> str:
    """Coqui's hand-written configs allow // comments: drop them outside strings."""
    out, in_string, escaped, i = [], False, False, 0
    while i < len(text):
        char = text[i]
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)


def read_config_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(strip_json_comments(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: not a readable Coqui config.json ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a mapping of settings")
    return data


def _stats(path_text: Optional[str], folder: Path, where: str) -> Optional[tuple[list, list]]:
    """Coqui's mean/std statistics (stats_path: an .npy dict with mel_mean, mel_std), if given."""
    if not path_text:
        return None
    path = Path(path_text)
    for candidate in (path, folder / path.name):
        if candidate.is_file():
            try:
                stats = safe_npy_load(candidate).item()  # a dict saved by Coqui's compute_statistics
                return [float(v) for v in stats["mel_mean"]], [float(v) for v in stats["mel_std"]]
            except UnsafeCheckpoint:
                raise
            except Exception as exc:
                raise CheckpointError(f"{candidate}: not readable Coqui statistics ({exc})") from None
    raise CheckpointError(f"{where}: audio.stats_path {path_text} not found (looked beside the checkpoint too)")


def config_from_coqui(data: dict[str, Any], where: str, folder: Path, notes: list[str]) -> HiFiGANConfig:
    if data.get("generator_model", "hifigan_generator") != "hifigan_generator":
        raise CheckpointError(f"{where}: generator_model {data['generator_model']} is not hifigan_generator")
    params = data.get("generator_model_params") or {}
    audio_data = data.get("audio") or {}
    for name in ("cond_channels", "pre_linear"):
        if params.get(name):
            raise CheckpointError(f"{where}: generator_model_params.{name} is not supported")
    if data.get("use_pqmf"):
        raise CheckpointError(f"{where}: multi-band (use_pqmf) generators are not supported")
    try:
        generator = GeneratorConfig(
            resblock=str(params.get("resblock_type", "1")),
            upsample_rates=[int(v) for v in params.get("upsample_factors", [8, 8, 2, 2])],
            upsample_kernel_sizes=[int(v) for v in params.get("upsample_kernel_sizes", [16, 16, 4, 4])],
            upsample_initial_channel=int(params.get("upsample_initial_channel", 512)),
            resblock_kernel_sizes=[int(v) for v in params.get("resblock_kernel_sizes", [3, 7, 11])],
            resblock_dilation_sizes=[[int(d) for d in ds] for ds in
                                     params.get("resblock_dilation_sizes", [[1, 3, 5]] * 3)],
            inference_padding=int(params.get("inference_padding", 5)),
        )
        rate = int(audio_data.get("sample_rate", 22050))
        for name in ("frame_length_ms", "frame_shift_ms"):
            if audio_data.get(name):
                raise CheckpointError(f"{where}: audio.{name} is not supported; give win_length/hop_length")
        n_fft = int(audio_data.get("fft_size", 1024))
        audio = AudioConfig(
            sampling_rate=rate, n_fft=n_fft, hop_length=int(audio_data.get("hop_length", 256)),
            win_length=int(audio_data.get("win_length", n_fft)),
            n_mels=int(params.get("in_channels", audio_data.get("num_mels", 80))),
            fmin=float(audio_data.get("mel_fmin") or 0.0),
            fmax=None if audio_data.get("mel_fmax") is None else float(audio_data["mel_fmax"]),
            fmax_for_loss=None,
        )
        dialect: dict[str, Any] = {
            "preemphasis": float(audio_data.get("preemphasis", 0.0)),
            "pad_mode": audio_data.get("stft_pad_mode", "reflect"),
            "log": "ln" if audio_data.get("log_func", "np.log10") == "np.log" else "log10",
            "log_gain": float(audio_data.get("spec_gain", 20.0)),
            "ref_level_db": float(audio_data.get("ref_level_db", 20)),
            "min_level_db": float(audio_data.get("min_level_db", -100)),
            "max_norm": float(audio_data.get("max_norm", 4.0)),
            "symmetric_norm": bool(audio_data.get("symmetric_norm", True)),
            "clip_norm": bool(audio_data.get("clip_norm", True)),
            "normalize": None,
        }
        if not audio_data.get("do_amp_to_db_mel", True):
            raise CheckpointError(f"{where}: linear-amplitude mels (do_amp_to_db_mel false) are not supported")
        if audio_data.get("signal_norm", True):
            stats = _stats(audio_data.get("stats_path"), folder, where)
            if stats is not None:
                dialect.update(normalize="per-band", norm_mean=stats[0], norm_scale=stats[1])
            else:
                dialect["normalize"] = "db-range"
        from ...audio.frontends import with_frontend

        audio = with_frontend(audio, "coqui", **dialect)
        notes.append(f"log floor {LOG_FLOOR:g} (coqui-tts 0.22 and later; older Coqui TTS floored at 1e-5)")
        segment = max(audio.hop_length, int(data.get("seq_len", 8192)) // audio.hop_length * audio.hop_length)
        return HiFiGANConfig(name=str(data.get("run_name", "coqui")), audio=audio, generator=generator,
                             training=TrainingConfig(segment_size=segment)).validate()
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: settings not usable: {exc}") from None


def read(source: CheckpointSource) -> ImportedGenerator:
    state = _generator_state(source)
    files, notes = [source.path], []
    config_path = source.beside("config.json")
    if config_path is not None:
        data: Optional[dict] = read_config_json(config_path)
        files.append(config_path)
        where = str(config_path)
    else:
        data = source.data.get("config") if isinstance(source.data.get("config"), dict) else None
        where = f"the config inside {source.path}"
    config = None
    if data is None:
        notes.append("no config.json beside the checkpoint and none inside: the preset its shapes fit")
    else:
        config = config_from_coqui(data, where, source.folder, notes)
    extra = {"step": source.data.get("step"), "epoch": source.data.get("epoch")}
    return ImportedGenerator(state, config, "coqui", files, notes, extra)


FORMAT = CheckpointFormat(
    name="coqui", toolkit="Coqui TTS",
    files="best_model.pth / checkpoint_<N>.pth / model_file.pth + config.json (or the config inside)",
    detect=detect, read=read,
)
