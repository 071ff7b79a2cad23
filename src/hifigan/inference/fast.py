"""Faster synthesis paths: `optimize(generator, dtype, device, method)` -> a mel-to-audio module.

Every path maps mel [B, n_mels, T] (any float dtype) to audio [B, 1, T * hop]
in float32, with the semantics of `Generator.forward` after weight norm is
folded; the caller's generator is never modified.

Names: `PATHS` is the one vocabulary of synthesis paths, shared by
`optimize(method=)`, `Vocoder(backend=)`, `hifigan synthesize --backend` and
`hifigan bench synth --paths`; `ALIASES` are second spellings accepted
wherever a path is named (never deprecated): "fft" for "fast", "eager" for
"torch", "onnxruntime" for "onnx". Paths:

- "fast", float32 (CPU, exact): the resblock convolutions by fast algorithms
  with fewer multiplications (32-point FFT overlap-save for 7 and 11 taps,
  Winograd F(6, 3) for 3 taps; `fast_conv.py`), the transposed convolutions as
  polyphase GEMMs, on a time-major layout with reused buffers, run by a fused
  C kernel where it builds (`fast_native.py`: AVX-512, AVX2 + FMA or NEON).
  Same audio as eager up to fp32 rounding: ~1e-5 max abs on real weights, as
  far from a float64 evaluation as eager fp32 itself. Zero padding, or
  SpeechBrain's reflection (mirrored margins written before each conv).
- "fast", bfloat16 (CPU with AVX512_BF16): the same, with the channel mixing in
  bf16 dot products (float32 sums); everything else stays float32. On CPUs with
  AMX tiles (Sapphire Rapids and later) "fast" bf16 is instead the direct
  convolutions on oneDNN's AMX kernels, pre-packed and fused (`fast_amx.py`),
  which is faster there; `optimize(..., amx=False)` asks for the FFT kernel.
- "torch": eager PyTorch, the folded generator cast to `dtype` (bfloat16 on CPU
  uses oneDNN's avx512_bf16 kernels; float16 / bfloat16 on CUDA use tensor cores).
- "compile": `torch.compile` (inductor; C++/OpenMP on CPU, Triton on CUDA) of
  the folded generator in `dtype`, weights frozen as constants.
- "cuda-graph" (CUDA): eager in `dtype`, captured once per input shape into a
  CUDA graph and replayed (removes the launch overhead of ~80 small kernels).
- "onnx": onnxruntime on CPU (needs the whole config to export: `Vocoder` and
  the benchmark build it, not `optimize`).
- "auto": "fast" on CPU where the model allows (float32; bfloat16 where the CPU
  has AMX or the kernel has bf16), "torch" otherwise.

How the Vocoder plugs it in (one hook, `Vocoder._generate`): build
`fast = optimize(generator, dtype, device)` once and call `fast(mel)` where it
calls the generator; the result is float32 [B, 1, T * hop]. The modules are
inference-only and not thread-safe (they reuse scratch buffers and CUDA graphs):
one per thread.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..models import Generator
from ..models import generator as definition
from ..models.generator import ResidualStep, same_padding
from . import fast_native
from .fast_conv import (
    FastConv1d,
    PolyphaseConvTranspose1d,
    SequenceLayout,
    Transform,
    Workspace,
    default_transform,
)
from .fast_native import PANEL, Kernel, NativeConv1d, NativePair

# The synthesis paths: one vocabulary for optimize, Vocoder, the CLI and the benchmark.
PATHS = ("auto", "fast", "torch", "compile", "cuda-graph", "onnx")
# Second spellings, accepted wherever a path is named and never deprecated.
ALIASES = {"fft": "fast", "eager": "torch", "onnxruntime": "onnx"}
METHODS = tuple(p for p in PATHS if p != "onnx")  # what `optimize` builds
DeviceLike = Union[str, torch.device, None]
TransformChoice = Callable[[int], Transform]


def path_name(name: str, allowed: Sequence[str] = PATHS, what: str = "synthesis path") -> str:
    """The `PATHS` name of `name` (an alias gives its path); ConfigError unless it is one of `allowed`."""
    path = ALIASES.get(name, name) if isinstance(name, str) else name
    if path not in allowed:
        names = ", ".join(allowed)
        aliases = ", ".join(f"{alias} = {target}" for alias, target in ALIASES.items() if target in allowed)
        raise ConfigError(f"unknown {what} {name!r}; {what}s are {names}" + (f" (also {aliases})" if aliases else ""))
    return path


def folded_copy(generator: Generator, dtype: torch.dtype = torch.float32,
                device: DeviceLike = "cpu") -> Generator:
    """An eval-mode copy with weight norm folded, in `dtype` on `device` (the original is untouched)."""
    from .export import _export_copy

    return _export_copy(generator).to(device=torch.device(device or "cpu"), dtype=dtype)


def _leaky_relu_into(source: torch.Tensor, slope: float, out: torch.Tensor) -> None:
    torch.ops.aten.leaky_relu.out(source, slope, out=out)


def _padded(channels: int) -> int:
    """Channel count rounded up to the native kernel's panel (extra channels stay exactly zero)."""
    return -(-channels // PANEL) * PANEL


def _pad_conv(weight: torch.Tensor, bias: torch.Tensor, c_out: int, c_in: int) -> tuple[torch.Tensor, torch.Tensor]:
    w = weight.new_zeros(c_out, c_in, weight.shape[2])
    w[:weight.shape[0], :weight.shape[1]] = weight
    b = bias.new_zeros(c_out)
    b[:bias.shape[0]] = bias
    return w, b


def padding_refusal(generator: nn.Module, allowed: tuple[str, ...] = ("zeros",)) -> Optional[str]:
    """Why a fast path cannot run `generator` (a padding mode it does not implement); None if it can.

    The FFT path implements zero padding and SpeechBrain's reflection (`conv_padding_mode`), the latter
    when every stride-1 convolution reflects; the AMX path zero padding only.
    """
    modes = {m.padding_mode for m in generator.modules() if isinstance(m, nn.Conv1d)}
    for name, module in generator.named_modules():
        if isinstance(module, nn.Conv1d) and (module.padding_mode not in allowed or len(modes) > 1):
            return (f"this fast path implements {' or '.join(allowed)} padding of every convolution; this "
                    f"generator's {name} pads by {module.padding_mode!r}: use the 'torch' path")
    return None


def conv_padding_mode(generator: nn.Module) -> str:
    """The padding mode of the generator's stride-1 convolutions ("zeros" or "reflect")."""
    return next((m.padding_mode for m in generator.modules() if isinstance(m, nn.Conv1d)), "zeros")


def _residual_steps(block: nn.Module, where: str) -> list[ResidualStep]:
    """The block's own description of its forward (models/generator.py); ConfigError where there is none to trust."""
    kind = type(block).__name__
    owner = {name: next((c for c in type(block).__mro__ if name in c.__dict__), None)
             for name in ("forward", "residual_steps")}
    if owner["residual_steps"] is None:
        raise ConfigError(f"the fast path cannot run {where} ({kind}): it does not describe its forward with "
                          "residual_steps() (models/generator.py); use the 'torch' path")
    if owner["forward"] is not owner["residual_steps"] and issubclass(owner["forward"], owner["residual_steps"]):
        raise ConfigError(f"the fast path cannot run {where} ({kind}): it overrides forward but not "
                          "residual_steps(); use the 'torch' path")
    steps = block.residual_steps()
    sizes = {len(step.convs) for step in steps}
    if len(sizes) != 1 or not sizes <= {1, 2}:  # the buffer plan of FFTGenerator._stage assumes this
        raise ConfigError(f"the fast path runs resblocks whose residual steps all have one, or all two, "
                          f"convolutions; {where} ({kind}) has steps of {sorted(sizes)}")
    for step in steps:
        for conv in step.convs:
            _check_conv(conv, f"{where} ({kind})")
    return steps


def _check_conv(conv: nn.Module, where: str) -> None:
    """ConfigError unless `conv` is what FastConv1d computes: a biased, zero-padded 'same' stride-1 Conv1d."""
    if not isinstance(conv, nn.Conv1d):
        raise ConfigError(f"the fast path runs Conv1d layers in resblocks; {where} has a {type(conv).__name__}")
    k, d = conv.kernel_size[0], conv.dilation[0]
    if (conv.stride[0] != 1 or conv.groups != 1 or conv.bias is None or k % 2 == 0
            or conv.padding_mode not in ("zeros", "reflect") or conv.padding not in ((same_padding(k, d),), "same")):
        raise ConfigError(f"the fast path runs biased, zero- or reflect-padded, length-preserving stride-1 convolutions; "
                          f"{where} has {conv}")


def _kernel(native: Union[bool, str, None], bf16: bool) -> Optional[Kernel]:
    """The kernel build FFTGenerator runs (see its `native`), or None for the PyTorch implementation."""
    if native is False:
        if bf16:
            raise ConfigError("bfloat16 FFT synthesis needs the native kernel on a CPU with AVX512_BF16")
        return None
    target = "auto" if native is None or native is True else native
    if target not in fast_native.TARGETS:
        raise ConfigError(f"unknown native kernel target {target!r}; targets are {', '.join(fast_native.TARGETS)}")
    found = fast_native.kernel(target)
    if found is None and (native is not None or bf16):
        raise ConfigError(f"the native FFT kernel ({target}) is not available: {fast_native.failure(target)}")
    if bf16 and not found.bf16:
        raise ConfigError("bfloat16 FFT synthesis needs the native kernel on a CPU with AVX512_BF16")
    return found


class _Stage:
    """One upsampling layer plus its multi-receptive-field fusion, prepared for FFTGenerator."""

    def __init__(self, up: nn.ConvTranspose1d, blocks: list[tuple[str, nn.Module]], transforms: TransformChoice,
                 native: Optional[Kernel], bf16: bool, fuse: bool) -> None:
        self.rate = up.stride[0]
        self.c_in, self.channels = _padded(up.in_channels), _padded(up.out_channels)
        # ConvTranspose1d weight is [in, out, k]: pad both channel axes
        w, b = _pad_conv(up.weight.detach().float().transpose(0, 1), up.bias.detach().float(),
                         self.channels, self.c_in)
        self.up = PolyphaseConvTranspose1d(w.transpose(0, 1), b, stride=self.rate, padding=up.padding[0])
        # each resblock, from its own description: a list of (first conv, second conv or None, slope, pair)
        # for x = x + conv2(lrelu(conv1(lrelu(x)))) or x = x + conv1(lrelu(x)); `pair` is the two
        # convs fused on time tiles (native kernel, zero padding), else None
        self.blocks: list[list[tuple]] = []
        for where, block in blocks:
            steps = []
            for step in _residual_steps(block, where):
                convs = [self._conv(c, transforms, native, bf16) for c in step.convs] + [None] * (2 - len(step.convs))
                pair = NativePair(*convs) if fuse and native is not None and convs[1] is not None else None
                steps.append((convs[0], convs[1], step.slope, pair))
            self.blocks.append(steps)
        self.convs = [c for steps in self.blocks for step in steps for c in step[:2] if c is not None]
        self.pairs = [step[3] for steps in self.blocks for step in steps if step[3] is not None]
        self.max_padding = max(c.padding for c in self.convs)  # sets the gaps between examples
        self.margin = max([self.max_padding] + [pair.padding for pair in self.pairs])  # rows before time 0

    def _conv(self, conv: nn.Conv1d, transforms: TransformChoice, native: Optional[Kernel], bf16: bool):
        w, b = _pad_conv(conv.weight.detach().float(), conv.bias.detach().float(), self.channels, self.channels)
        fast = FastConv1d(w, b, dilation=conv.dilation[0], transform=transforms(conv.kernel_size[0]))
        if native is None:
            return fast
        packed = NativeConv1d(fast, bf16=bf16, native=native)
        fast.release_weights()  # the kernel's packed copy is the only one used from now on
        return packed

    def rows(self, total: int) -> int:
        """Rows of a stage buffer: margins for the reads of every conv around times [0, total)."""
        reach = max(max(c.input_extent(total), c.covered(total)) for c in self.convs + self.pairs)
        return self.margin + reach

    def covered(self, total: int) -> int:
        """Rows from time 0 that the stage's convolutions write."""
        return max(c.covered(total) for c in self.convs + self.pairs)

    def flops(self, total: int) -> float:
        """Arithmetic of the resblocks for `total` rows (fused pairs with their recomputed halos)."""
        work = 0.0
        for steps in self.blocks:
            for conv1, conv2, _, pair in steps:
                convs = [c for c in (conv1, conv2) if c is not None]
                work += pair.flops(total) if pair is not None else sum(c.flops(total) for c in convs)
        return work


class FFTGenerator(nn.Module):
    """CPU synthesis with fast convolution algorithms: exact float32, or bf16 mixing (module docstring).

    `transforms`: kernel size -> `Transform` for the stride-1 convs (default
    `default_transform`: Winograd F(6, 3) for 3 taps, 32-point FFT up to 11).
    `native`: the fused C kernel: None (default) when it builds on this machine,
    True to require it, False for the PyTorch implementation (same results),
    or a `fast_native.TARGETS` name ("avx2"...) to require that build. `bf16`:
    mix the spectra in bfloat16 (native kernel on AVX512_BF16 CPUs only; not exact).
    The structure is read from the model: its resblocks' `residual_steps()` and
    the activation slopes of models/generator.py; ConfigError for what it cannot run.
    """

    def __init__(self, generator: Generator, transforms: Optional[TransformChoice] = None,
                 native: Union[bool, str, None] = None, bf16: bool = False) -> None:
        super().__init__()
        refusal = padding_refusal(generator, allowed=("zeros", "reflect"))
        if refusal:
            raise ConfigError(refusal)
        model = folded_copy(generator, torch.float32, "cpu")
        # SpeechBrain: every stride-1 conv reflects; stage buffers get mirrored margins before each conv
        self.reflect = conv_padding_mode(model) == "reflect"
        self._eager = model if self.reflect else None  # inputs too short to reflect run eagerly
        self.kernel = _kernel(native, bf16)
        self.native, self.bf16 = self.kernel is not None, bf16
        # Generator.forward's own activations, read from its module when the path is built
        self.up_slope, self.final_slope = definition.LRELU_SLOPE, definition.FINAL_LRELU_SLOPE
        self.n_mels = model.n_mels
        self.hop_length = model.hop_length
        self.num_kernels = model.num_kernels
        self.pre_weight = model.conv_pre.weight.detach()
        self.pre_bias = model.conv_pre.bias.detach()
        self.pre_padding = model.conv_pre.padding[0]
        self.post_channels = model.conv_post.in_channels
        self.post_weight = model.conv_post.weight.detach()
        self.post_bias = model.conv_post.bias.detach()
        self.post_padding = model.conv_post.padding[0]
        n = model.num_kernels
        transforms = transforms or default_transform
        self.stages = [_Stage(up, [(f"resblocks.{j}", model.resblocks[j]) for j in range(i * n, (i + 1) * n)],
                              transforms, self.kernel, bf16, fuse=not self.reflect)
                       for i, up in enumerate(model.ups)]
        self.gap = self._gap_frames()
        self.workspace = Workspace()

    def arithmetic_flops(self, batch: int, frames: int) -> float:
        """FLOPs (2 per multiply-add) this path really does for a [batch, n_mels, frames] mel.

        Gap frames between examples included; compare with `bench.generator_flops`
        (direct convolution) to see how much work the fast algorithms save.
        """
        layout = SequenceLayout(batch, frames, self.gap)
        total = 2.0 * self.pre_weight.numel() * batch * frames
        for stage in self.stages:
            length = layout.total
            up = stage.up
            total += sum(2.0 * w.numel() * length for _, _, products, _ in up.groups for _, w in products)
            layout = layout.scaled(stage.rate)
            total += stage.flops(layout.total)
        return total + 2.0 * self.post_weight.numel() * batch * frames * self.hop_length

    def release_buffers(self) -> None:
        """Free the scratch buffers kept between calls (they are re-made on the next call)."""
        self.workspace.clear()

    def _gap_frames(self) -> int:
        """Zero frames between examples: enough for every layer's padding at its rate."""
        need, rate = 1, 1
        for stage in self.stages:
            halo = max(-stage.up.min_offset, stage.up.max_offset, 0)
            need = max(need, math.ceil(halo / rate))
            rate *= stage.rate
            # reflection fills both neighbours' margins inside one gap: twice the padding
            need = max(need, math.ceil(stage.max_padding * (2 if self.reflect else 1) / rate))
        return max(need, math.ceil(self.post_padding / rate))

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if mel.dim() != 3 or mel.shape[1] != self.n_mels:
            raise ConfigError(f"expected a mel batch [B, {self.n_mels}, frames], got {tuple(mel.shape)}")
        mel = mel.to(device="cpu", dtype=torch.float32)
        if self.reflect and mel.shape[2] * self.stages[0].rate <= max(self.stages[0].max_padding, self.pre_padding):
            return self._eager(mel)  # too short for the mirrored margins (SpeechBrain itself needs 4 frames)
        if self.reflect:
            x = F.conv1d(F.pad(mel, (self.pre_padding, self.pre_padding), mode="reflect"), self.pre_weight,
                         self.pre_bias)
        else:
            x = F.conv1d(mel, self.pre_weight, self.pre_bias, padding=self.pre_padding)  # [B, C, T]
        layout = SequenceLayout(mel.shape[0], mel.shape[2], self.gap)
        source = x.transpose(1, 2)  # [B, T, C]: the examples of the first stage's input
        ready = None  # (buffer, origin): the previous stage's output, already activated for this one
        for index, stage in enumerate(self.stages):
            after = self.up_slope if index + 1 < len(self.stages) else self.final_slope
            source, layout, ready = self._stage(stage, source, layout, ready, after)
        if ready is not None:  # already through the final leaky ReLU
            h = source[..., :self.post_channels]
        else:
            h = torch.empty(layout.batch, layout.length, self.post_channels)
            _leaky_relu_into(source[..., :self.post_channels], self.final_slope, h)
        if self.reflect:
            y = F.conv1d(F.pad(h.transpose(1, 2), (self.post_padding, self.post_padding), mode="reflect"),
                         self.post_weight, self.post_bias)
        else:
            y = _time_major_conv(h, self.post_weight, self.post_bias, self.post_padding)
        return torch.tanh(y)

    def _margins(self, buffer: torch.Tensor, origin: int, layout: SequenceLayout, pad: int) -> None:
        """Before a conv reads `buffer`: zero padding is already there (zeroed gaps); reflection is written."""
        if self.reflect and pad:
            _mirror_margins(buffer, origin, layout, pad)

    def _stage(self, stage: _Stage, source: torch.Tensor, layout: SequenceLayout,
               ready: Optional[tuple[torch.Tensor, int]], after: float):
        """Upsample the examples `source` [B, L, C] and fuse the resblocks.

        `ready`: (buffer, origin) where `source` is already leaky-ReLU'd for the upsampling, in a
        sequence that is zero outside the examples (the previous stage's fused output), else
        None. Returns ([B, L*s, C'] view, layout, ready): when the last resblock is a fused pair
        its stores apply the next layer's leaky ReLU (slope `after`), and `ready` says where.
        """
        ws, up = self.workspace, stage.up
        if ready is not None:
            u, u_origin = ready
        else:  # upsampling input: lrelu(source) in a zeroed sequence with margins for the polyphase taps
            u_origin = max(0, -up.min_offset)
            u_rows = u_origin + layout.total + max(0, up.max_offset)
            u = ws.get("u", (u_rows, stage.c_in), source)
            _leaky_relu_into(source, self.up_slope, layout.valid(u, u_origin)[..., :source.shape[-1]])
            u[:u_origin].zero_()  # everything but the examples is zero: margins, gaps, tail, padded channels
            layout.zero_invalid(u, u_origin, u_rows - u_origin)
            if source.shape[-1] < stage.c_in:
                layout.valid(u, u_origin)[..., source.shape[-1]:].zero_()
        layout = layout.scaled(stage.rate)
        total, origin, c = layout.total, stage.margin, stage.channels
        rows = stage.rows(total)
        covered = stage.covered(total)
        x0, acc, tmp, h = (ws.get(name, (rows, c), source) for name in ("x0", "acc", "tmp", "h"))
        up(u, u_origin, layout.total // stage.rate, x0[origin:], ws)
        # every stage buffer is zero outside the examples: that is the convs' zero padding
        for buffer in (x0, acc, tmp, h):
            buffer[:origin].zero_()
            buffer[origin + total:].zero_()
        layout.zero_invalid(x0, origin, total)
        blocks = len(stage.blocks)
        divided = False  # whether the kernel already divided the sum by the block count
        for index, steps in enumerate(stage.blocks):
            spare = [tmp, h] if index > 0 else [acc, tmp] if len(steps) % 2 else [tmp, acc]
            current = x0
            for step, (conv1, conv2, slope, pair) in enumerate(steps):
                if pair is not None and index > 0 and step == len(steps) - 1:
                    # the block's last pair adds itself into the sum (and averages it after the last block)
                    last = index == blocks - 1
                    pair(current, origin, layout, acc, current, slope, accumulate=True,
                         divisor=float(self.num_kernels) if last else None, activate=after if last else None)
                    divided = divided or last
                    current = acc
                elif pair is not None:  # x = x + conv2(lrelu(conv1(lrelu(x)))) fused, ping-pong
                    target = spare[0] if current is not spare[0] else spare[1]
                    pair(current, origin, layout, target, current, slope)
                    current = target
                elif conv2 is None:  # x = x + conv(lrelu(x)), ping-pong between two buffers
                    target = spare[0] if current is not spare[0] else spare[1]
                    self._margins(current, origin, layout, conv1.padding)
                    conv1(current, origin, layout, target, current, ws, slope)
                    current = target
                else:  # x = x + conv2(lrelu(conv1(lrelu(x)))), in place after the first pair
                    target = (acc if index == 0 else tmp) if current is x0 else current
                    self._margins(current, origin, layout, conv1.padding)
                    conv1(current, origin, layout, h, None, ws, slope)
                    self._margins(h, origin, layout, conv2.padding)
                    conv2(h, origin, layout, target, current, ws, slope)
                    current = target
            if index > 0 and current is not acc:
                acc[origin:origin + covered].add_(current[origin:origin + covered])
            elif index == 0 and current is not acc:
                acc.copy_(current)
        valid = layout.valid(acc, origin)
        if not divided:
            torch.div(valid, self.num_kernels, out=valid)
            return valid, layout, None
        return valid, layout, (acc, origin)  # averaged and activated by the last pair


def _time_major_conv(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: int) -> torch.Tensor:
    """conv1d(h.transpose(1, 2), weight, bias, padding) for time-major h [B, L, C]: one product, then shifted sums.

    Why: the last conv has few outputs (1 for mono); transposing h for F.conv1d copies the whole
    activation and the convolution then runs at a fraction of the GEMM rate. Here
    z[t, j] = h[t] . weight[:, :, j] is one [B*L, C] x [C, k*O] product, and y[t] = bias + sum_j
    z[t + j - padding, j] (zero outside each example) adds k shifted columns.
    """
    batch, length, channels = h.shape
    c_out, _, k = weight.shape
    z = torch.mm(h.reshape(batch * length, channels), weight.permute(1, 2, 0).reshape(channels, k * c_out))
    z = z.view(batch, length, k, c_out)
    y = bias.view(1, c_out, 1).repeat(batch, 1, length)
    for j in range(k):
        shift = j - padding  # y[t] += z[t + shift, j]
        lo, hi = max(0, -shift), min(length, length - shift)
        if hi > lo:
            y[:, :, lo:hi] += z[:, lo + shift:hi + shift, j, :].transpose(1, 2)
    return y


def _mirror_margins(buffer: torch.Tensor, origin: int, layout: SequenceLayout, pad: int) -> None:
    """Reflection padding in place: the `pad` rows around each example mirror its edge (not the edge row)."""
    for b in range(layout.batch):
        start = origin + layout.gap + b * layout.stride
        end = start + layout.length
        buffer[start - pad:start] = buffer[start + 1:start + pad + 1].flip(0)
        buffer[end:end + pad] = buffer[end - pad - 1:end - 1].flip(0)


def use_amx(amx: Optional[bool] = None) -> bool:
    """Whether "fast" bf16 runs on AMX (`fast_amx.py`): `amx` None = where the CPU has it; ConfigError for True without."""
    if amx and not fast_native.amx_available():
        raise ConfigError("the AMX bf16 path needs a CPU with AMX (amx_bf16, amx_tile) and PyTorch with oneDNN")
    return fast_native.amx_available() if amx is None else bool(amx)


def fast_bf16_kernel(generator: nn.Module, amx: Optional[bool] = None, native: Union[bool, str, None] = None) -> str:
    """What "fast" runs for bfloat16 here: "amx", "fft" (the kernel's bf16 mixing) or "float32".

    `amx` True / False pins AMX / the FFT kernel's bf16 mixing (ConfigError where it cannot
    run). With None: AMX where the CPU has it and the model is zero-padded; else bf16 mixing
    where the kernel has it and it is faster than float32 mixing on this CPU
    (`fast_native.bf16_mixing_pays`); else the exact float32 kernel, which is then both faster
    and more accurate: asking for bfloat16 never runs slower than float32.
    """
    if amx:
        use_amx(True)  # ConfigError without AMX
        return "amx"
    if amx is None and fast_native.amx_available() and padding_refusal(generator) is None:
        return "amx"
    target = "auto" if native is None or native is True else native
    has_bf16 = native is not False and target in fast_native.TARGETS and fast_native.bf16_available(target)
    if amx is False:
        if not has_bf16:
            raise ConfigError("bfloat16 FFT synthesis needs the native kernel on a CPU with AVX512_BF16")
        return "fft"
    return "fft" if has_bf16 and fast_native.bf16_mixing_pays(target) else "float32"


def optimize(generator: Generator, dtype: torch.dtype = torch.float32, device: DeviceLike = None,
             method: str = "auto", **options) -> nn.Module:
    """A module mel [B, n_mels, T] -> float32 audio [B, 1, T * hop] computing `generator` faster.

    `method`: one of `METHODS` or an alias (module docstring). `options`:
    "fast" takes `transforms` and `native`, and in bfloat16 `amx` (None: the
    AMX path where the CPU has AMX, else the FFT kernel; True: require AMX;
    False: the FFT kernel); "compile" takes `mode` (torch.compile mode).
    Raises ConfigError for combinations that do not exist (e.g. "fast" in
    float16 or on CUDA). Reflect-padded models (SpeechBrain) run on the FFT
    path (AMX implements zero padding only).
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    method = path_name(method, METHODS, "synthesis method")
    amx = options.pop("amx", None)
    if method == "auto":
        fits = (device.type == "cpu" and dtype in (torch.float32, torch.bfloat16)
                and padding_refusal(generator, allowed=("zeros", "reflect")) is None)
        method = "fast" if fits else "torch"
    if method == "fast":
        if device.type != "cpu" or dtype not in (torch.float32, torch.bfloat16):
            raise ConfigError("method 'fast' runs on CPU in float32 (exact) or bfloat16")
        kernel = fast_bf16_kernel(generator, amx, options.get("native")) if dtype == torch.bfloat16 else "float32"
        if kernel == "amx":
            if options:
                raise ConfigError(f"the AMX bf16 path takes no options {sorted(options)} (amx=False: the FFT kernel)")
            from .fast_amx import AMXGenerator

            return AMXGenerator(generator)
        return FFTGenerator(generator, bf16=kernel == "fft", **options)
    if device.type == "cpu" and dtype == torch.float16:
        raise ConfigError("float16 on CPU has no fast kernels; use bfloat16 (or float32)")
    if method == "cuda-graph":
        if device.type != "cuda":
            raise ConfigError("method 'cuda-graph' needs a CUDA device")
        return CUDAGraphGenerator(folded_copy(generator, dtype, device))
    model = folded_copy(generator, dtype, device)
    if method == "compile":
        return CompiledGenerator(model, mode=options.get("mode"))
    return CastGenerator(model)


class CastGenerator(nn.Module):
    """The folded generator in its own dtype/device; mel cast in, float32 audio out."""

    def __init__(self, model: Generator) -> None:
        super().__init__()
        self.model = model
        parameter = next(model.parameters())
        self.dtype, self.device = parameter.dtype, parameter.device

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.model(mel.to(device=self.device, dtype=self.dtype)).float()


class CompiledGenerator(CastGenerator):
    """`torch.compile` of the folded generator; the first call per shape compiles (tens of seconds on CPU).

    Inductor's `freezing` (weights as constants, pre-packed for oneDNN) is
    switched on around our calls only, not for the rest of the process.
    """

    def __init__(self, model: Generator, mode: Optional[str] = None) -> None:
        super().__init__(model)
        self.compiled = torch.compile(model, mode=mode, dynamic=False)

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=True):
            return self.compiled(mel.to(device=self.device, dtype=self.dtype)).float()


class CUDAGraphGenerator(CastGenerator):
    """Eager CUDA generator captured into one CUDA graph per input shape and replayed."""

    def __init__(self, model: Generator) -> None:
        super().__init__(model)
        self._graphs: dict[tuple[int, ...], tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        key = tuple(mel.shape)
        if key not in self._graphs:
            static_in = torch.zeros(key, device=self.device, dtype=self.dtype)
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):  # warm-up outside the graph (allocator, cuDNN autotune)
                for _ in range(2):
                    self.model(static_in)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.model(static_in)
            self._graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[key]
        static_in.copy_(mel)
        graph.replay()
        return static_out.to(torch.float32, copy=True)  # the next replay overwrites static_out
