"""SpeechBrain's HiFi-GAN (speechbrain.lobes.models.HifiGAN.HifiganGenerator), as its Hub repos hold it.

`generator.ckpt` is a bare state dict (its Checkpointer's `torch.save(module.
state_dict())`), every key with SpeechBrain's wrapper segment `.conv.`
(`conv_pre.conv.bias`, `ups.0.conv.*`, `resblocks.<i>.convs1.<j>.conv.*`);
weight norm as parametrizations (SpeechBrain 1.x) or weight_g/weight_v
(0.5). `hyperparams.yaml` beside it (HyperPyYAML: `!new:`, `!ref`, read here
as plain data, never run) gives the generator arguments and, in recipe-style
files, the audio settings.

Differences from the authors': every stride-1 convolution pads by reflection
(`nnet/CNN.py Conv1d` padding_mode "reflect"); the interface's inference
(`inference/vocoders.py HIFIGAN.decode_batch` -> `generator.inference`)
replicates `inference_padding` (5) frames at each end and keeps their audio.
Front end (`mel_spectrogram`, torchaudio MelSpectrogram): centred framing with
reflect padding, |X| (power 1) with no epsilon, Slaney filters, natural log
clamped at 1e-5.
"""
from __future__ import annotations

import re
from typing import Any, Optional

from ...config import AudioConfig, GeneratorConfig, HiFiGANConfig
from ...errors import CheckpointError, ConfigError
from ..source import CheckpointSource, read_yaml
from .base import CheckpointFormat, ImportedGenerator, tensors_only

_REF = re.compile(r"^<([^>]+)>$")
WEIGHTS_NAME = "generator.ckpt"
HPARAMS_NAME = "hyperparams.yaml"


def _weights(source: CheckpointSource) -> Optional[CheckpointSource]:
    return source.file_for(WEIGHTS_NAME)


def detect(source: CheckpointSource) -> bool:
    weights = _weights(source)
    if weights is None or weights.kind not in ("torch-zip", "pickle"):
        return False
    data = weights.data
    return tensors_only(data) and any(k.startswith("conv_pre.conv.") for k in data)


def _resolve(value: Any, top: dict[str, Any], depth: int = 0) -> Any:
    """HyperPyYAML `!ref <name>` -> the referenced top-level value (plain data only)."""
    if depth > 20:
        raise CheckpointError("hyperparams.yaml: !ref chain too deep")
    if isinstance(value, dict) and value.get("__tag__") == "!ref":
        match = _REF.match(str(value["value"]).strip())
        if not match or match.group(1) not in top:
            raise CheckpointError(f"hyperparams.yaml: cannot resolve !ref {value['value']}")
        return _resolve(top[match.group(1)], top, depth + 1)
    return value


def _generator_args(hparams: dict[str, Any]) -> dict[str, Any]:
    node = hparams.get("generator")
    if isinstance(node, dict) and str(node.get("__tag__", "")).startswith("!new:"):
        if not node["__tag__"].endswith("HifiganGenerator"):
            raise CheckpointError(f"hyperparams.yaml: the generator is {node['__tag__'][5:]}, not HifiganGenerator")
        args = node.get("value") or {}
        return {k: _resolve(v, hparams) for k, v in args.items()}
    return {k: _resolve(v, hparams) for k, v in hparams.items()}  # recipe-style: arguments at the top


def config_from_hparams(hparams: dict[str, Any], where: str, notes: list[str]) -> HiFiGANConfig:
    args = _generator_args(hparams)
    if int(args.get("cond_channels", 0) or 0):
        raise CheckpointError(f"{where}: a conditioned generator (cond_channels > 0) is not supported")
    if not args.get("conv_post_bias", True):
        raise CheckpointError(f"{where}: conv_post_bias False is not supported")
    try:
        rates = [int(v) for v in args["upsample_factors"]]
        generator = GeneratorConfig(
            resblock=str(args.get("resblock_type", "1")),
            upsample_rates=rates,
            upsample_kernel_sizes=[int(v) for v in args["upsample_kernel_sizes"]],
            upsample_initial_channel=int(args["upsample_initial_channel"]),
            resblock_kernel_sizes=[int(v) for v in args["resblock_kernel_sizes"]],
            resblock_dilation_sizes=[[int(d) for d in ds] for ds in args["resblock_dilation_sizes"]],
            conv_padding_mode="reflect",
            inference_padding=int(args.get("inference_padding", 5)),
        )
        hop = int(hparams.get("hop_length", generator.total_upsampling))
        if "sample_rate" not in hparams:
            notes.append("no audio settings in hyperparams.yaml: SpeechBrain's LJSpeech recipe values assumed "
                         "(22.05 kHz, n_fft 1024, 0-8000 Hz)")
        power = float(hparams.get("power", 1))
        if power != 1.0 or hparams.get("mel_normalized") or hparams.get("dynamic_range_compression") is False:
            raise CheckpointError(f"{where}: only the recipes' front end (power 1, not normalised, log "
                                  "compression) is supported")
        n_fft = int(hparams.get("n_fft", 1024))
        audio = AudioConfig(
            sampling_rate=int(hparams.get("sample_rate", 22050)),
            n_fft=n_fft,
            hop_length=hop,
            win_length=int(hparams.get("win_length", n_fft)),
            n_mels=int(args.get("in_channels", hparams.get("n_mel_channels", 80))),
            fmin=float(hparams.get("mel_fmin", 0.0)),
            fmax=None if hparams.get("mel_fmax", 8000.0) is None else float(hparams.get("mel_fmax", 8000.0)),
            fmax_for_loss=None,
        )
        from ...audio.frontends import with_frontend

        audio = with_frontend(audio, "speechbrain", mel_norm=hparams.get("norm", "slaney"),
                              mel_scale=hparams.get("mel_scale", "slaney"))
        return HiFiGANConfig(name="speechbrain", audio=audio, generator=generator).validate()
    except KeyError as exc:
        raise CheckpointError(f"{where}: the generator arguments lack {exc.args[0]!r}") from None
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: settings not usable: {exc}") from None


def read(source: CheckpointSource) -> ImportedGenerator:
    weights = _weights(source)
    state = {k.replace(".conv.", ".", 1): v for k, v in weights.data.items()}
    files, notes = [weights.path], []
    config = None
    hparams_path = weights.beside(HPARAMS_NAME, "hparams.yaml", "../" + HPARAMS_NAME)
    if hparams_path is None:
        notes.append("no hyperparams.yaml beside the weights: the preset its shapes fit, "
                     "with SpeechBrain's reflect padding unknown")
    else:
        hparams = read_yaml(hparams_path)
        if not isinstance(hparams, dict):
            raise CheckpointError(f"{hparams_path}: expected a mapping of settings")
        config = config_from_hparams(hparams, str(hparams_path), notes)
        files.append(hparams_path)
    return ImportedGenerator(state, config, "speechbrain", files, notes)


FORMAT = CheckpointFormat(
    name="speechbrain", toolkit="SpeechBrain",
    files="generator.ckpt + hyperparams.yaml beside it (or the model folder)",
    detect=detect, read=read,
)
