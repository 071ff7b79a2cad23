"""Exact fast 1-D convolutions for CPU synthesis, on time-major [time, channels] sequences.

Why: a HiFi-GAN generator spends ~90% of its CPU time in stride-1 convolutions
(kernels 3-11, 32-512 channels), and eager PyTorch (oneDNN) already runs them
close to the fp32 matrix-multiply peak. Going faster at the same precision
means doing fewer multiplications, with bilinear algorithms (`Transform`):

- `fft_transform`: overlap-save with a short real DFT of length N (32). A frame
  of N input samples gives N - k + 1 outputs; in the DFT domain the channel
  mixing is one small matrix product per frequency (2x2 real blocks for the
  complex bins): 2.8 multiply-adds per output and channel pair instead of 11
  for k = 11, 2.4 instead of 7 for k = 7. The DFT is orthogonal up to scale,
  so its rounding error does not grow with N.
- `winograd_transform`: Winograd's minimal filtering F(6, 3), 8 products for 6
  outputs of a 3-tap kernel (1.33 instead of 3), in its small, accurate form.

`FastConv1d` runs a transform on frames of every d-th sample (dilation d) as a
few matrix products in PyTorch; `fast_native.NativeConv1d` runs the same one
fused in C. `PolyphaseConvTranspose1d` computes a stride-s transposed
convolution as products on the un-upsampled input (no multiply-by-zero work),
writing time-major output directly.

Sequences: a batch is laid end to end along time with zero gaps between the
examples (`SequenceLayout`), so every layer sees one long sequence and runs as a
few large products whatever the batch size. A gap at least as long as every
layer's padding makes each example's result identical to its own zero-padded
convolution.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Optional

import torch

# ---- scratch memory ----------------------------------------------------------------------


class Workspace:
    """Named flat scratch buffers reused across calls.

    Fresh large CPU tensors are page-faulted in at a few GB/s, which costs as
    much as the arithmetic of a layer; reusing buffers avoids it. Buffers only
    grow. Not thread-safe: one workspace per running model.
    """

    def __init__(self) -> None:
        self._flat: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        numel = math.prod(shape)
        flat = self._flat.get(name)
        if flat is None or flat.numel() < numel or flat.dtype != like.dtype or flat.device != like.device:
            flat = torch.empty(numel, dtype=like.dtype, device=like.device)
            self._flat[name] = flat
        return flat[:numel].view(shape)

    def zeros(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        buffer = self.get(name, shape, like)
        buffer.zero_()
        return buffer

    def clear(self) -> None:
        self._flat.clear()

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._flat.values())


# ---- batch layout ------------------------------------------------------------------------


@dataclass(frozen=True)
class SequenceLayout:
    """Where each example lives on the concatenated time axis of one rate.

    Example b occupies positions [gap + b * stride, gap + b * stride + length),
    with stride = length + gap; positions outside are zero in every layer input.
    """

    batch: int
    length: int
    gap: int

    @property
    def stride(self) -> int:
        return self.length + self.gap

    @property
    def total(self) -> int:
        return self.gap + self.batch * self.stride

    def scaled(self, factor: int) -> "SequenceLayout":
        return SequenceLayout(self.batch, self.length * factor, self.gap * factor)

    def valid(self, sequence: torch.Tensor, origin: int = 0) -> torch.Tensor:
        """View [batch, length, C] of the examples in `sequence` [rows, C] (time 0 at row `origin`)."""
        start = origin + self.gap
        block = sequence[start:start + self.batch * self.stride]
        return block.view(self.batch, self.stride, -1)[:, :self.length]

    def zero_invalid(self, sequence: torch.Tensor, origin: int, end: int) -> None:
        """Zero the rows of times [0, end) that hold no example (leading gap, gaps, tail)."""
        sequence[origin:origin + self.gap].zero_()
        start = origin + self.gap
        block = sequence[start:start + self.batch * self.stride]
        block.view(self.batch, self.stride, -1)[:, self.length:].zero_()
        if end > self.total:
            sequence[origin + self.total:origin + end].zero_()


# ---- fast convolution algorithms ---------------------------------------------------------


@dataclass(frozen=True)
class Transform:
    """A bilinear convolution algorithm: y = synthesis . mix(analysis . frame).

    A frame of `block` input samples gives `hop` = block - k + 1 outputs of a
    k-tap correlation. The analysis rows are mixed across channels in `groups`
    (start row, size): a group of size 2 holds the (re, im) parts of a complex
    DFT bin and is mixed by a 2x2 real block per channel pair.
    """

    name: str
    kernel_size: int
    block: int
    analysis: torch.Tensor  # [block, block] float64
    synthesis: torch.Tensor  # [hop, block] float64
    groups: tuple[tuple[int, int], ...]
    # weight [c_out, c_in, k] float64 -> per group [size * c_in, size * c_out]
    mixing: Callable[[torch.Tensor], list[torch.Tensor]]

    @property
    def hop(self) -> int:
        return self.block - self.kernel_size + 1


@functools.lru_cache(maxsize=None)
def fft_transform(kernel_size: int, block: int = 32) -> Transform:
    """Overlap-save with a real DFT of even length `block`: ~4 (N/2) / (N - k + 1) products per output.

    Analysis rows: DC, (cos, -sin) for bins 1..N/2-1, Nyquist. The synthesis
    gives samples k-1 .. N-1 of the inverse DFT, which the circular wrap does
    not touch. The DFT is orthogonal up to scale, so rounding errors do not grow
    with N as they do in large Winograd tiles.
    """
    n, k = block, kernel_size
    if n % 2 or n < k + 1:
        raise ValueError(f"the DFT block must be even and longer than the kernel, got {n} for k = {k}")
    t = torch.arange(n, dtype=torch.float64)
    rows = [torch.ones(n, dtype=torch.float64)]
    for f in range(1, n // 2):
        angle = 2 * math.pi * f * t / n
        rows += [torch.cos(angle), -torch.sin(angle)]
    rows.append(torch.cos(math.pi * t))
    j = torch.arange(k - 1, n, dtype=torch.float64)
    cols = [torch.full_like(j, 1.0 / n)]
    for f in range(1, n // 2):
        angle = 2 * math.pi * f * j / n
        cols += [2.0 * torch.cos(angle) / n, -2.0 * torch.sin(angle) / n]
    cols.append(torch.cos(math.pi * j) / n)
    groups = ((0, 1),) + tuple((2 * f - 1, 2) for f in range(1, n // 2)) + ((n - 1, 1),)

    def mixing(weight: torch.Tensor) -> list[torch.Tensor]:
        # circular convolution with the flipped kernel = the correlation conv1d computes
        h = weight.new_zeros(weight.shape[0], weight.shape[1], n)
        h[..., :k] = weight.flip(-1)
        spectrum = torch.fft.rfft(h, dim=-1)  # [c_out, c_in, N/2 + 1]
        real, imag = spectrum.real.permute(2, 1, 0), spectrum.imag.permute(2, 1, 0)  # [bins, c_in, c_out]
        # [xr, xi] @ [[Hr, Hi], [-Hi, Hr]] = [xr Hr - xi Hi, xr Hi + xi Hr]
        pairs = [torch.cat([torch.cat([real[f], imag[f]], 1), torch.cat([-imag[f], real[f]], 1)], 0)
                 for f in range(1, n // 2)]
        return [real[0]] + pairs + [real[n // 2]]

    return Transform(f"fft{n}", k, n, torch.stack(rows), torch.stack(cols, dim=1), groups, mixing)


WINOGRAD_POINTS = (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2),
                   Fraction(1, 2), Fraction(-1, 2))


@functools.lru_cache(maxsize=None)
def winograd_transform(kernel_size: int, outputs: int = 6) -> Transform:
    """Winograd's minimal filtering F(m, k): m + k - 1 real products for m outputs.

    Built by Toom-Cook on the points 0, +-1, +-2, +-1/2 (and infinity), exact
    in rationals, then rounded once to float64: y = V_m^T [(V_k w) * (V^-T x)].
    F(6, 3) does 8 products for 6 outputs instead of 18; its float32 rounding
    error is a few times that of direct convolution (small tiles only: larger
    ones lose accuracy fast, which is why long kernels use the FFT instead).
    """
    m, k = outputs, kernel_size
    a = m + k - 1
    points = WINOGRAD_POINTS[:a - 1]
    if len(points) != a - 1:
        raise ValueError(f"Winograd F({m}, {k}) needs {a - 1} points; only {len(WINOGRAD_POINTS)} are defined")

    def vandermonde(columns: int) -> list[list[Fraction]]:
        rows = [[p ** j for j in range(columns)] for p in points]
        return rows + [[Fraction(0)] * (columns - 1) + [Fraction(1)]]  # the point at infinity

    inverse = _invert(vandermonde(a))
    analysis = [[inverse[j][i] for j in range(a)] for i in range(a)]  # V^-T
    evaluate = vandermonde(k)  # V_k: kernel -> point values
    v_m = vandermonde(m)
    synthesis = [[v_m[p][i] for p in range(a)] for i in range(m)]  # V_m^T

    def as_tensor(rows: list[list[Fraction]]) -> torch.Tensor:
        return torch.tensor([[float(x) for x in row] for row in rows], dtype=torch.float64)

    g = as_tensor(evaluate)

    def mixing(weight: torch.Tensor) -> list[torch.Tensor]:
        points_w = torch.einsum("pk,oik->pio", g.to(weight), weight)  # [a, c_in, c_out]
        return list(points_w)

    return Transform(f"winograd{m}x{k}", k, a, as_tensor(analysis), as_tensor(synthesis),
                     tuple((p, 1) for p in range(a)), mixing)


def _invert(matrix: list[list[Fraction]]) -> list[list[Fraction]]:
    """Exact inverse by Gauss-Jordan elimination over the rationals."""
    n = len(matrix)
    rows = [list(row) + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = next(i for i in range(col, n) if rows[i][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        scale = rows[col][col]
        rows[col] = [x / scale for x in rows[col]]
        for i in range(n):
            if i != col and rows[i][col] != 0:
                factor = rows[i][col]
                rows[i] = [x - factor * y for x, y in zip(rows[i], rows[col])]
    return [row[n:] for row in rows]


def default_transform(kernel_size: int) -> Transform:
    """Winograd F(6, 3) for 3 taps, the 32-point FFT up to 11 taps, a longer FFT beyond."""
    if kernel_size == 3:
        return winograd_transform(3, 6)
    if kernel_size <= 11:
        return fft_transform(kernel_size, 32)
    return fft_transform(kernel_size, 2 ** math.ceil(math.log2(3 * kernel_size)))


@dataclass
class _Group:
    """Transform rows mixed together (see `Transform`)."""

    start: int
    size: int
    weight: Optional[torch.Tensor]  # [size * c_in, size * c_out]; None once released

    @property
    def flops_per_frame(self) -> int:
        return 2 * self.size * self.size  # times c_in * c_out


class FastConv1d:
    """Stride-1 'same' Conv1d (odd kernel, any dilation) by a `Transform`, on time-major sequences.

    Dilation d is polyphase framing: frames of every d-th sample. The result
    equals `torch.nn.functional.conv1d` up to float32 rounding.
    """

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], dilation: int = 1,
                 transform: Optional[Transform] = None) -> None:
        c_out, c_in, k = weight.shape
        if k % 2 == 0:
            raise ValueError("FastConv1d implements odd ('same' padded) kernels")
        transform = transform or default_transform(k)
        if transform.kernel_size != k:
            raise ValueError(f"transform {transform.name} is for {transform.kernel_size} taps, not {k}")
        self.transform = transform
        self.c_in, self.c_out, self.kernel_size, self.dilation = c_in, c_out, k, dilation
        self.block, self.hop = transform.block, transform.hop
        self.padding = dilation * (k - 1) // 2
        dtype, device = weight.dtype, weight.device
        self.analysis = transform.analysis.to(dtype=dtype, device=device)
        self.synthesis = transform.synthesis.to(dtype=dtype, device=device)
        self.bias = None if bias is None else bias.detach().to(dtype=dtype, device=device)
        mixing = transform.mixing(weight.detach().double().cpu())
        self.groups = [_Group(start, size, w.to(dtype=dtype, device=device).contiguous())
                       for (start, size), w in zip(transform.groups, mixing)]

    def release_weights(self) -> None:
        """Drop the mixing weights (a native kernel that packed its own copy keeps the shapes only)."""
        for group in self.groups:
            group.weight = None

    def flops_per_frame(self) -> int:
        """FLOPs of one frame: analysis, mixing and synthesis."""
        mixing = sum(g.flops_per_frame for g in self.groups) * self.c_in * self.c_out
        return 2 * self.block * self.block * self.c_in + mixing + 2 * self.hop * self.block * self.c_out

    def flops(self, length: int) -> int:
        """FLOPs of one call over `length` output rows (every phase's frames)."""
        return self.flops_per_frame() * self.frames(length) * self.dilation

    def frames(self, length: int) -> int:
        """Frames per phase that cover outputs [0, length)."""
        return -(-length // (self.hop * self.dilation))

    def covered(self, length: int) -> int:
        """How many output positions one call writes for `length` wanted ones (>= length)."""
        return self.frames(length) * self.hop * self.dilation

    def input_extent(self, length: int) -> int:
        """Input positions read past output position 0 (the padded input needs this many after origin - padding)."""
        return self.covered(length) + self.dilation * (self.kernel_size - 1)

    def __call__(self, source: torch.Tensor, origin: int, layout: SequenceLayout, out: torch.Tensor,
                 base: Optional[torch.Tensor], workspace: Workspace, slope: float) -> None:
        """out[t] = (base[t] +) conv(leaky_relu(source, slope))[t] on valid rows, 0 on the others.

        For times t in [0, covered(layout.total)). `source`, `out` and `base`
        are contiguous [rows, c] with time 0 at row `origin`; `source` is zero
        outside the examples, with at least `padding` rows before `origin` and
        rows up to origin - padding + input_extent(layout.total). `out` may be
        `base`, not `source`.
        """
        d, hop, n = self.dilation, self.hop, self.block
        q = self.frames(layout.total)
        c_in, c_out = self.c_in, self.c_out
        activated = workspace.get("fft_act", tuple(source.shape), source)
        torch.ops.aten.leaky_relu.out(source, slope, out=activated)
        spectra = workspace.get("fft_x", (d * q, n, c_in), source)
        start = (origin - self.padding) * c_in
        for phase in range(d):
            frames = activated.as_strided((q, n, c_in), (hop * d * c_in, d * c_in, 1), start + phase * c_in)
            torch.matmul(self.analysis, frames, out=spectra[phase * q:(phase + 1) * q])
        mixed = workspace.get("fft_y", (d * q, n, c_out), source)
        flat_in = spectra.view(d * q, n * c_in)
        flat_out = mixed.view(d * q, n * c_out)
        for g in self.groups:
            a = flat_in[:, g.start * c_in:(g.start + g.size) * c_in]
            torch.mm(a, g.weight, out=flat_out[:, g.start * c_out:(g.start + g.size) * c_out])
        result = workspace.get("fft_out", (d * q, hop, c_out), source)
        torch.matmul(self.synthesis, mixed, out=result)
        if self.bias is not None:
            result.add_(self.bias)
        covered = q * hop * d
        # result row (phase, frame, i) is time frame * hop * d + i * d + phase
        target = out[origin:origin + covered].view(q, hop, d, c_out)
        values = result.view(d, q, hop, c_out).permute(1, 2, 0, 3)
        if base is None:
            target.copy_(values)
        else:
            torch.add(base[origin:origin + covered].view(q, hop, d, c_out), values, out=target)
        layout.zero_invalid(out, origin, covered)


# ---- transposed convolution ----------------------------------------------------------------


class PolyphaseConvTranspose1d:
    """ConvTranspose1d(stride s, kernel K, padding p) as GEMMs on the input, time-major.

    Output sample t*s + r only sees the kernel taps congruent to (r + p) mod s,
    so each output phase r is a small regular convolution of the input; phases
    with the same input offsets share their products. No zero is ever multiplied.
    """

    def __init__(self, weight: torch.Tensor, bias: Optional[torch.Tensor], stride: int, padding: int) -> None:
        c_in, c_out, k = weight.shape
        s = stride
        self.c_in, self.c_out, self.stride = c_in, c_out, s
        # out[t*s + r] = sum_j W[:, :, j*s + r'] . x[t + base - j],  r + p = base*s + r'
        taps: list[list[tuple[int, int]]] = []  # per phase: (input offset, kernel tap)
        for r in range(s):
            base, rem = divmod(r + padding, s)
            taps.append([(base - j, j * s + rem) for j in range(k) if j * s + rem < k])
        offsets = sorted({o for phase in taps for o, _ in phase})
        self.min_offset, self.max_offset = offsets[0], offsets[-1]  # input rows read around t
        w = weight.detach()
        # group consecutive phases with the same input offsets: one product per (group, offset)
        self.groups: list[tuple[int, int, list[tuple[int, torch.Tensor]], Optional[torch.Tensor]]] = []
        r = 0
        while r < s:
            offsets_r = sorted(o for o, _ in taps[r])
            r_end = r + 1
            while r_end < s and sorted(o for o, _ in taps[r_end]) == offsets_r:
                r_end += 1
            products = []
            for offset in offsets_r:
                block = torch.zeros(c_in, r_end - r, c_out, dtype=w.dtype, device=w.device)
                for phase in range(r, r_end):
                    for o, tap in taps[phase]:
                        if o == offset:
                            block[:, phase - r, :] = w[:, :, tap]
                products.append((offset, block.reshape(c_in, (r_end - r) * c_out)))
            b = None if bias is None else bias.detach().repeat(r_end - r)
            self.groups.append((r, r_end, products, b))
            r = r_end

    def __call__(self, source: torch.Tensor, origin: int, length: int, out: torch.Tensor,
                 workspace: Workspace) -> None:
        """out[t*s + r] = convT(source)[t*s + r] for input positions t in [0, length).

        `source` [time, c_in] has input position 0 at row `origin`, zeros where
        the layer's input is zero, and rows origin + min_offset ..
        origin + length + max_offset. `out` [>= length * s, c_out]. Shifted views
        of `source` feed the products directly (no im2col copy).
        """
        phased = out[:length * self.stride].view(length, self.stride * self.c_out)
        for r0, r1, products, bias in self.groups:
            o = phased[:, r0 * self.c_out:r1 * self.c_out]
            for index, (offset, weight) in enumerate(products):
                a = source[origin + offset:origin + offset + length]
                if index:
                    o.addmm_(a, weight)
                elif bias is None:
                    torch.mm(a, weight, out=o)
                else:
                    torch.addmm(bias, a, weight, out=o)
