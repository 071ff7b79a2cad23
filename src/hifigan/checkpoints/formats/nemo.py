"""NVIDIA NeMo HiFi-GAN (nemo.collections.tts.models.HifiGanModel): `.nemo` archives and Lightning `.ckpt`s.

A `.nemo` file is a tar (gzip in NeMo before 1.7) holding `model_config.yaml`
and `model_weights.ckpt` (a plain state dict); a training run's Lightning
`.ckpt` holds the same `state_dict` and the config under
`hyper_parameters["cfg"]` as OmegaConf objects, read here as plain data by the
allow-list unpickler (nothing in either file is ever executed). Generator keys
are `generator.*`, resblocks nested `resblocks.<level>.<kernel>.` (flat in
older files), weight norm as weight_g/weight_v; the generator is numerically
the authors', and `convert_spectrogram_to_audio` calls it with no padding.

Front end (`cfg.preprocessor`, nemo/collections/asr/parts/preprocessing/
features.py FilterbankFeatures): `exact_pad` pads (n_fft - hop) / 2 zeros on
each side (else centred, zeros), a symmetric Hann window, |X| to `mag_power`
with no epsilon, Slaney (or unnormalised) filters, log(clamp(mel, guard)) or
log(mel + guard), and the last frame always overwritten by `pad_value` (its
length mask is one frame short).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ...config import AudioConfig, GeneratorConfig, HiFiGANConfig, TrainingConfig
from ...errors import CheckpointError, ConfigError
from ..safe_pickle import plain_data, safe_torch_load
from ..source import CheckpointSource, read_yaml
from .base import CheckpointFormat, ImportedGenerator, StateDict, flatten_resblocks, strip_prefix

CONFIG_MEMBER = "model_config.yaml"
WEIGHTS_MEMBER = "model_weights.ckpt"


def _lightning_config(source: CheckpointSource) -> Optional[dict]:
    if source.kind not in ("torch-zip", "pickle"):
        return None
    data = source.data
    if not isinstance(data, dict) or not isinstance(data.get("state_dict"), dict):
        return None
    hparams = data.get("hyper_parameters")
    cfg = hparams.get("cfg", hparams) if isinstance(hparams, dict) else None
    return cfg if isinstance(cfg, dict) and "generator" in cfg else None


def _is_archive(source: CheckpointSource) -> bool:
    return source.kind == "tar" and CONFIG_MEMBER in source.tar_members


def _archives(folder: Path) -> list[Path]:
    return sorted(path for path in folder.glob("*.nemo") if path.is_file())


def _archive_in(source: CheckpointSource) -> CheckpointSource:
    """A folder holding one `.nemo` file (as NeMo's Hub repos do) stands for that file."""
    if source.is_folder:
        found = _archives(source.path)
        return CheckpointSource(found[0]) if len(found) == 1 else source
    return source


def detect(source: CheckpointSource) -> bool:
    source = _archive_in(source)
    if _is_archive(source):
        return WEIGHTS_MEMBER in source.tar_members and _is_hifigan(_archive_config(source))
    cfg = _lightning_config(source)
    return cfg is not None and _is_hifigan(cfg)


def _is_hifigan(cfg: dict) -> bool:
    target = str(cfg.get("target", "") or (cfg.get("generator") or {}).get("_target_", ""))
    return "hifigan" in target.lower() or "HifiGan" in target


def _archive_config(source: CheckpointSource) -> dict:
    text = source.tar_read(CONFIG_MEMBER, limit=16 << 20).decode("utf-8", errors="replace")
    data = read_yaml(Path(f"{source.path}:{CONFIG_MEMBER}"), text)
    if not isinstance(data, dict):
        raise CheckpointError(f"{source.path}: {CONFIG_MEMBER} is not a mapping of settings")
    return data


def describe(source: CheckpointSource) -> Optional[str]:
    if source.is_folder and len(_archives(source.path)) > 1:
        return f"{source.path} holds several .nemo files: name the one to load"
    source = _archive_in(source)
    if _is_archive(source):
        cfg = _archive_config(source)
        target = cfg.get("target", "an unnamed model")
        if WEIGHTS_MEMBER not in source.tar_members:
            return f"{source.path} looks like a NeMo archive without weights ({WEIGHTS_MEMBER} is missing)"
        return (f"{source.path} looks like a NeMo archive without a generator: it holds {target}, "
                "not a HiFi-GAN vocoder (HifiGanModel)")
    if source.kind == "tar":
        return f"{source.path} is a tar archive but not a NeMo model ({CONFIG_MEMBER} is missing)"
    return None


def _generator_config(gen: dict, where: str) -> GeneratorConfig:
    try:
        return GeneratorConfig(
            resblock=str(gen.get("resblock", 1)),
            upsample_rates=[int(v) for v in gen["upsample_rates"]],
            upsample_kernel_sizes=[int(v) for v in gen["upsample_kernel_sizes"]],
            upsample_initial_channel=int(gen["upsample_initial_channel"]),
            resblock_kernel_sizes=[int(v) for v in gen["resblock_kernel_sizes"]],
            resblock_dilation_sizes=[[int(d) for d in ds] for ds in gen["resblock_dilation_sizes"]],
        )
    except KeyError as exc:
        raise CheckpointError(f"{where}: the generator config lacks {exc.args[0]!r}") from None


def _audio_config(pre: dict, rate_default: int, where: str, notes: list[str]) -> AudioConfig:
    """FilterbankFeatures / AudioToMelSpectrogramPreprocessor arguments -> our front end."""
    rate = int(pre.get("sample_rate", rate_default))

    def samples(count_key: str, seconds_key: str, default: Optional[int]) -> Optional[int]:
        if pre.get(count_key) is not None:
            return int(pre[count_key])
        if pre.get(seconds_key) is not None:
            return int(round(float(pre[seconds_key]) * rate))
        return default

    win = samples("n_window_size", "window_size", 1024)
    hop = samples("n_window_stride", "window_stride", 256)
    n_fft = int(pre.get("n_fft") or win)
    for name, allowed in (("window", ("hann", None)), ("normalize", (None, "None", "null")),
                          ("frame_splicing", (1, None)), ("log", (True, None))):
        if pre.get(name) not in allowed:
            raise CheckpointError(f"{where}: preprocessor {name} = {pre.get(name)!r} is not supported "
                                  f"(only {allowed[0]!r})")
    if int(pre.get("pad_to") or 0) > 1:
        notes.append(f"the preprocessor pads the frame count to a multiple of {pre['pad_to']} with pad_value; "
                     "a vocoder does not need it, so it is not reproduced")
    guard = str(pre.get("log_zero_guard_type", "add"))
    highfreq = pre.get("highfreq")
    exact = bool(pre.get("exact_pad", False))
    audio = AudioConfig(
        sampling_rate=rate, n_fft=n_fft, hop_length=hop, win_length=win,
        n_mels=int(pre.get("nfilt", pre.get("features", 64))),
        fmin=float(pre.get("lowfreq") or 0.0), fmax=None if highfreq is None else float(highfreq),
        fmax_for_loss=None,
    )
    from ...audio.frontends import with_frontend

    return with_frontend(
        audio, "nemo",
        center=not exact,
        preemphasis=float(pre.get("preemph") or 0.0),
        power=float(pre.get("mag_power", 2.0)),
        mel_norm=pre.get("mel_norm", "slaney") or None,
        log_floor=float(pre.get("log_zero_guard_value", 2 ** -24)),
        log_floor_mode="clamp" if guard == "clamp" else "add",
        last_frame_value=float(pre.get("pad_value", 0.0)),
    )


def config_from_nemo(cfg: dict, where: str, notes: list[str]) -> HiFiGANConfig:
    pre = cfg.get("preprocessor")
    if not isinstance(pre, dict):
        raise CheckpointError(f"{where}: the model config has no preprocessor (the mel front end)")
    rate = int((cfg.get("train_ds") or {}).get("dataset", {}).get("sample_rate", 22050))
    try:
        generator = _generator_config(cfg["generator"], where)
        audio = _audio_config(pre, rate, where, notes)
        segment = int((cfg.get("train_ds") or {}).get("dataset", {}).get("n_segments", 8192))
        segment = max(audio.hop_length, segment // audio.hop_length * audio.hop_length)
        return HiFiGANConfig(name="nemo-hifigan", audio=audio, generator=generator,
                             training=TrainingConfig(segment_size=segment)).validate()
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: settings not usable: {exc}") from None


def _generator_state(state: dict, where: str) -> StateDict:
    generator = strip_prefix(state, "generator.")
    if not generator:
        raise CheckpointError(f"{where} holds no generator.* weights")
    return flatten_resblocks(generator)


def read(source: CheckpointSource) -> ImportedGenerator:
    source = _archive_in(source)
    notes: list[str] = []
    if _is_archive(source):
        cfg = _archive_config(source)
        where = f"{source.path} ({CONFIG_MEMBER})"
        weights = plain_data(safe_torch_load(source.tar_read(WEIGHTS_MEMBER), f"{source.path} ({WEIGHTS_MEMBER})"))
        if not isinstance(weights, dict):
            raise CheckpointError(f"{source.path}: {WEIGHTS_MEMBER} is not a state dict")
        state, extra = _generator_state(weights, str(source.path)), {}
    else:
        cfg = _lightning_config(source)
        where = f"{source.path} (hyper_parameters)"
        state = _generator_state(source.data["state_dict"], str(source.path))
        extra = {"epoch": source.data.get("epoch"), "global_step": source.data.get("global_step")}
    config = config_from_nemo(cfg, where, notes)
    return ImportedGenerator(state, config, "nemo", [source.path], notes, extra)


FORMAT = CheckpointFormat(
    name="nemo", toolkit="NVIDIA NeMo",
    files=".nemo archive (model_config.yaml + model_weights.ckpt), a folder with one, "
          "or a training run's Lightning .ckpt",
    detect=detect, read=read, describe=describe,
)
