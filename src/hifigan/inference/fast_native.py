"""The fused fast-convolution kernel (C source in `native/`): built once with the system C compiler, called via ctypes.

Why C: in PyTorch a fast convolution is five passes over tensors of tens of MB
(activated input, spectra, mixed spectra, outputs, residual) and ~20 small GEMM
calls per layer; the fused kernel keeps a chunk of frames in L2 and touches
memory once, which makes it ~1.5x faster than the same algorithms in PyTorch.

Targets (`TARGETS`): one source builds for AVX-512, AVX2 + FMA and 64-bit ARM
NEON, the compiler's own macros choosing the vector code (native/hg_simd.h);
every variant computes the same sums in the same order. "auto" builds with
-march=native, so it gets the best of them this CPU has; "avx512", "avx2" and
"neon" ask for one (e.g. to check a variant on a machine that has more). The
kernel needs a C compiler (gcc/cc/clang) at first use; the shared library is
cached under `$HIFIGAN_CACHE_DIR` (default `~/.cache/hifigan/kernels`), keyed by
every source file, the compiler command and this CPU. Without them `available()`
is False, `failure()` says why, and the callers use the PyTorch implementation
in fast_conv.py (same results).

Shared structures: native/hg_fast.h defines `hg_conv` and `hg_layout`, and the
library reports their layout (`hg_field`); the ctypes mirrors below are checked
against it at load, and a mismatch refuses the kernel instead of corrupting memory.

Threads: the kernel is built with OpenMP and linked to `libgomp.so.1`, which
resolves to the copy PyTorch has already loaded, so it runs on PyTorch's own
(spinning, ready) threads, `torch.get_num_threads()` of them; handing work to
sleeping Python threads instead cost up to a third of the time on short inputs.
A compiler without OpenMP gets a single-threaded build, and the frames are
then split over Python threads (ctypes releases the GIL).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

from . import fast_kernels
from .fast_conv import FastConv1d, SequenceLayout, default_transform

FLAGS = ["-O3", "-shared", "-fPIC", "-std=gnu11"]
# Instruction-set flags per target; the source picks its vector code from the macros they define.
TARGETS: dict[str, tuple[str, ...]] = {
    "auto": ("-march=native",),  # the best this CPU has: AVX-512, else AVX2 + FMA, else NEON
    "avx512": ("-mavx512f", "-mfma"),  # without bf16 mixing, which only "auto" enables (where the CPU has it)
    "avx2": ("-mavx2", "-mfma"),
    "neon": ("-march=armv8-a",),  # 64-bit ARM (NEON is part of the architecture)
}
# OpenMP: the library then needs libgomp.so.1, which resolves to the copy PyTorch already
# loaded, so the kernel shares PyTorch's (spinning, ready) threads
OPENMP = ["-fopenmp"]
PANEL = 16  # channel counts are padded to a multiple of this for the kernel


# ctypes mirrors of the structures of native/hg_fast.h (their definition), checked at load
class _Conv(ctypes.Structure):
    _fields_ = [
        ("c_in", ctypes.c_int), ("c_out", ctypes.c_int),
        ("n", ctypes.c_int), ("hop", ctypes.c_int), ("dil", ctypes.c_int),
        ("ngroups", ctypes.c_int),
        ("g_start", ctypes.POINTER(ctypes.c_int)),
        ("g_size", ctypes.POINTER(ctypes.c_int)),
        ("g_weight", ctypes.POINTER(ctypes.POINTER(ctypes.c_float))),
        ("g_panel", ctypes.POINTER(ctypes.c_int)),
        ("analysis", ctypes.POINTER(ctypes.c_float)),
        ("folds", ctypes.c_int),
        ("fold_rows", ctypes.POINTER(ctypes.c_int)),
        ("fold_analysis", ctypes.POINTER(ctypes.c_float)),
        ("synthesis", ctypes.POINTER(ctypes.c_float)),
        ("fold_synthesis", ctypes.c_int),
        ("synthesis_pq", ctypes.POINTER(ctypes.c_float)),
        ("bias", ctypes.POINTER(ctypes.c_float)),
        ("slope", ctypes.c_float),
        ("bf16", ctypes.c_int),
        ("g_weight16", ctypes.POINTER(ctypes.POINTER(ctypes.c_uint16))),
    ]


class _Layout(ctypes.Structure):
    _fields_ = [("gap", ctypes.c_long), ("stride", ctypes.c_long),
                ("length", ctypes.c_long), ("batch", ctypes.c_long)]


_lock = threading.Lock()
_kernels: dict[str, Union["Kernel", str]] = {}  # target -> its loaded kernel, or why there is none
_pool: Optional[ThreadPoolExecutor] = None
_pool_size = 0


def cache_dir() -> Path:
    root = os.environ.get("HIFIGAN_CACHE_DIR") or Path.home() / ".cache" / "hifigan"
    return Path(root) / "kernels"


def _compiler() -> Optional[str]:
    for name in (os.environ.get("CC"), "gcc", "cc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _cpu_identity() -> str:
    """Model and flags of this CPU: a library built with -march=native must not load on another."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    wanted = [line for line in lines if line.startswith(("model name", "flags"))]
    return "\n".join(dict.fromkeys(wanted))


def compile_library(compiler: str, sources: dict[str, bytes], flags: list[str], label: str = "auto") -> Path:
    """The shared library of `sources` built with `compiler` and `flags`, from the cache when it is there.

    The key hashes every source file (name and text), the compiler command and
    this CPU; `label` (the target) only makes the file name readable.
    """
    digest = hashlib.sha256((" ".join([compiler] + flags) + _cpu_identity()).encode())
    for name, text in sources.items():
        digest.update(name.encode() + b"\0" + text + b"\0")
    target = cache_dir() / f"hifigan_fast_{label}_{digest.hexdigest()[:16]}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            for name, text in sources.items():
                (Path(tmp) / name).write_bytes(text)
            built = Path(tmp) / target.name
            result = subprocess.run([compiler, *flags, str(Path(tmp) / fast_kernels.MAIN), "-o", str(built)],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"{compiler} failed: {' '.join(result.stderr.split())[:400]}")
            os.replace(built, target)  # atomic: concurrent builders agree on the result
    return target


# ---- the structures C and Python share -------------------------------------------------------


def _mirrors() -> dict[str, type[ctypes.Structure]]:
    """C structure name -> its ctypes mirror (looked up at call time)."""
    return {"hg_conv": _Conv, "hg_layout": _Layout}


Fields = list[tuple[str, int, int]]  # (name, offset, size) in declaration order


def c_structures(lib: ctypes.CDLL) -> dict[str, tuple[int, Fields]]:
    """The library's own layout table: structure -> (sizeof, fields)."""
    structure, member = ctypes.c_char_p(), ctypes.c_char_p()
    offset, size = ctypes.c_long(), ctypes.c_long()
    sizes: dict[str, int] = {}
    fields: dict[str, Fields] = {}
    index = 0
    while lib.hg_field(index, ctypes.byref(structure), ctypes.byref(member), ctypes.byref(offset),
                       ctypes.byref(size)):
        name, field = structure.value.decode(), member.value.decode()
        if field:
            fields.setdefault(name, []).append((field, offset.value, size.value))
        else:  # the structure's own entry: its size
            sizes[name] = size.value
        index += 1
    return {name: (sizes.get(name, 0), fields.get(name, [])) for name in sizes.keys() | fields.keys()}


def _python_fields(mirror: type[ctypes.Structure]) -> Fields:
    return [(name, getattr(mirror, name).offset, getattr(mirror, name).size) for name, *_ in mirror._fields_]


def _difference(c: Fields, python: Fields) -> str:
    for (c_name, c_offset, c_size), (py_name, py_offset, py_size) in zip(c, python):
        if c_name != py_name:
            return f"C has field {c_name!r} where Python has {py_name!r}"
        if (c_offset, c_size) != (py_offset, py_size):
            return (f"field {c_name!r} is at offset {c_offset} with size {c_size} in C, "
                    f"offset {py_offset} with size {py_size} in Python")
    longer, side = (c, "C") if len(c) > len(python) else (python, "Python")
    return f"only {side} has field {longer[min(len(c), len(python))][0]!r}"


def layout_mismatch(lib: ctypes.CDLL, mirrors: Optional[dict[str, type[ctypes.Structure]]] = None) -> Optional[str]:
    """Why the ctypes mirrors differ from the library's structures (names, order, offsets, sizes); None if equal."""
    table = c_structures(lib)
    for name, mirror in (mirrors or _mirrors()).items():
        if name not in table:
            return f"the kernel library defines no structure {name}"
        size, c_fields = table[name]
        python = _python_fields(mirror)
        where = f"fast_native.{mirror.__name__} does not match {name} of native/hg_fast.h"
        if c_fields != python:
            return f"{where}: {_difference(c_fields, python)}"
        if size != ctypes.sizeof(mirror):
            return f"{where}: {size} bytes in C, {ctypes.sizeof(mirror)} in Python"
    return None


# ---- loading ---------------------------------------------------------------------------------


class Kernel:
    """One loaded build of the C kernel: the vector code it runs (`variant`), bf16, OpenMP."""

    def __init__(self, lib: ctypes.CDLL, target: str) -> None:
        lib.hg_field.restype = ctypes.c_int
        lib.hg_field.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p),
                                 ctypes.POINTER(ctypes.c_long), ctypes.POINTER(ctypes.c_long)]
        mismatch = layout_mismatch(lib)
        if mismatch:
            raise RuntimeError(mismatch)
        lib.hg_variant.restype = ctypes.c_char_p
        for name in ("hg_cpu_supported", "hg_has_bf16", "hg_openmp", "hg_fft_conv", "hg_fft_pair"):
            getattr(lib, name).restype = ctypes.c_int
        lib.hg_fft_conv.argtypes = [
            ctypes.POINTER(_Conv), ctypes.POINTER(_Layout), ctypes.c_void_p, ctypes.c_void_p,
            ctypes.c_void_p, ctypes.c_long, ctypes.c_int, ctypes.c_long, ctypes.c_long, ctypes.c_int,
        ]
        lib.hg_fft_pair.argtypes = [
            ctypes.POINTER(_Conv), ctypes.POINTER(_Conv), ctypes.POINTER(_Layout), ctypes.c_void_p,
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_long,
            ctypes.c_long, ctypes.c_int, ctypes.c_int, ctypes.c_float, ctypes.c_int, ctypes.c_float,
        ]
        self.variant = lib.hg_variant().decode()
        if not self.variant:
            raise RuntimeError(f"the {target} build has no vector code for this CPU (the kernel needs "
                               "AVX-512, AVX2 with FMA, or 64-bit ARM NEON)")
        if not lib.hg_cpu_supported():
            raise RuntimeError(f"this CPU lacks instructions the {target} build ({self.variant}) uses")
        self.lib, self.target = lib, target
        self.bf16 = bool(lib.hg_has_bf16())
        self.openmp = bool(lib.hg_openmp())

    def __repr__(self) -> str:
        return f"Kernel({self.target!r}: {self.variant}{', bf16' if self.bf16 else ''})"


def _build(target: str) -> Kernel:
    compiler = _compiler()
    if compiler is None:
        raise RuntimeError("no C compiler (gcc, cc or clang) on PATH")
    sources = fast_kernels.sources()
    flags = FLAGS + list(TARGETS[target])
    try:
        lib = ctypes.CDLL(str(compile_library(compiler, sources, flags + OPENMP, target)))
    except (RuntimeError, OSError):  # no OpenMP (compiler or runtime): threads come from Python
        lib = ctypes.CDLL(str(compile_library(compiler, sources, flags, target)))
    return Kernel(lib, target)


def kernel(target: str = "auto") -> Optional[Kernel]:
    """The kernel built for `target` (a key of TARGETS), built on first use; None if it cannot be had (`failure`)."""
    if target not in TARGETS:
        raise ValueError(f"unknown kernel target {target!r}; targets are {', '.join(TARGETS)}")
    with _lock:
        if target not in _kernels:
            if os.environ.get("HIFIGAN_NO_NATIVE"):
                _kernels[target] = "disabled by HIFIGAN_NO_NATIVE"
            else:
                try:
                    _kernels[target] = _build(target)
                except (OSError, RuntimeError) as exc:
                    _kernels[target] = str(exc)
        found = _kernels[target]
    return found if isinstance(found, Kernel) else None


def available(target: str = "auto") -> bool:
    return kernel(target) is not None


def bf16_available(target: str = "auto") -> bool:
    """Whether the kernel can mix in bfloat16 (AVX512_BF16 dot products)."""
    found = kernel(target)
    return found is not None and found.bf16


_bf16_pays: dict[str, bool] = {}  # target -> whether its bf16 mixing beat float32 here (timed once)


def bf16_mixing_pays(target: str = "auto") -> bool:
    """Whether the kernel's bf16 mixing is faster than its float32 mixing on this CPU (timed once per process).

    Why: avx512_bf16 dot products double the multiply rate on some CPUs (AMD Zen 4) but
    run at the FMA rate on others (Intel Sapphire Rapids), where converting the spectra
    makes bf16 slower than float32. Where it does not pay, `fast` in bfloat16 runs the
    exact float32 kernel (fast.fast_bf16_kernel). The timing (one V1-sized layer,
    ~0.1 s) must show bf16 at least 5% faster.
    """
    found = kernel(target)
    if found is None or not found.bf16:
        return False
    with _lock:
        if target in _bf16_pays:
            return _bf16_pays[target]
    generator = torch.Generator().manual_seed(0)
    channels, length = 128, 4096
    weight = torch.randn(channels, channels, 11, generator=generator) / 40
    conv = FastConv1d(weight, torch.zeros(channels), 1, default_transform(11))
    runs = [NativeConv1d(conv, bf16=flag, native=found) for flag in (False, True)]
    layout = SequenceLayout(1, length, conv.padding)
    rows = conv.padding + conv.input_extent(layout.total) + conv.covered(layout.total)
    source = torch.zeros(rows, channels)
    layout.valid(source, conv.padding).normal_(generator=generator)
    out = torch.empty_like(source)
    best = [float("inf"), float("inf")]
    for _ in range(4):
        for index, run in enumerate(runs):
            start = time.perf_counter()
            run(source, conv.padding, layout, out, None)
            best[index] = min(best[index], time.perf_counter() - start)
    pays = best[1] < 0.95 * best[0]
    with _lock:
        _bf16_pays[target] = pays
    return pays


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where it cannot be read: not Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def amx_available() -> bool:
    """Whether oneDNN can run bf16 convolutions on AMX tiles here (amx_bf16 + amx_tile, PyTorch with oneDNN)."""
    return {"amx_bf16", "amx_tile"} <= cpu_flags() and torch.backends.mkldnn.is_available()


def failure(target: str = "auto") -> Optional[str]:
    """Why the kernel for `target` is not available (None if it is)."""
    kernel(target)
    found = _kernels.get(target)
    return found if isinstance(found, str) else None


def _threads(count: int) -> ThreadPoolExecutor:
    """A shared pool of at least `count` worker threads (grown, never shrunk)."""
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < count:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(max_workers=count, thread_name_prefix="hifigan-fft"), count
        return _pool


def _float_ptr(tensor: torch.Tensor):
    return ctypes.cast(tensor.data_ptr(), ctypes.POINTER(ctypes.c_float))


MAX_FOLDS = 1  # analysis halvings: 1024 -> 512 multiply-adds per frame and channel for N = 32 (a second measured no faster)


@dataclass(frozen=True)
class FoldPlan:
    """How the kernel computes a transform's analysis by halvings (hg_fast.c `analyse`).

    A row whose second half repeats its first (even DFT bins) acts on u = x[:h] + x[h:],
    one whose second half is its first negated (odd bins) on v = x[:h] - x[h:], with
    the first half of the row: the same products at half the length. The repeating
    rows are halved again, `folds` times. X's rows are put in the order of the leaves
    (u_L, v_L, v_{L-1}, ..., v_1); `order[i]` is the transform row now at row i, and
    `starts[g]` the new first row of group g (the synthesis columns follow `order`).
    """

    folds: int
    order: list[int]
    starts: list[int]
    rows: list[int]  # rows per leaf
    matrices: torch.Tensor  # the leaves' rows, each cut to its leaf's length, concatenated (float64)
    synthesis_pq: Optional[torch.Tensor] = None  # the synthesis by halves (`fold_synthesis`), or None


def fold_synthesis(synthesis: torch.Tensor, even: int) -> Optional[torch.Tensor]:
    """[P; Q] of the synthesis by halves (hg_fast.c `synthesise_folded`), None where it does not apply.

    `synthesis` [hop, n] in X's row order, even bins first (`even` rows). Output j of a
    frame is synthesis row j - (n - hop); P and Q are the even and odd columns of the
    rows j >= n/2, and the rows j < n/2 must be P - Q there (checked, not assumed).
    """
    hop, n = synthesis.shape
    half, first = n // 2, n - hop
    if n % 2 or first > half or n > 128:
        return None
    upper = synthesis[half - first:]  # outputs j = n/2 .. n-1
    p, q = upper[:, :even], upper[:, even:]
    lower = synthesis[:half - first]  # outputs j = first .. n/2 - 1
    tol = 1e-9 * float(synthesis.abs().max())
    if lower.numel() and ((lower[:, :even] - p[first:]).abs().max() > tol or (lower[:, even:] + q[first:]).abs().max() > tol):
        return None
    return torch.cat([p.reshape(-1), q.reshape(-1)])


def fold_plan(analysis: torch.Tensor, groups: list[tuple[int, int]], synthesis: Optional[torch.Tensor] = None,
              max_folds: int = MAX_FOLDS) -> Optional[FoldPlan]:
    """The halvings a transform's analysis [n, n] allows (None if none: e.g. Winograd's), and with its
    `synthesis` [hop, n] the synthesis by halves where that applies."""
    n = analysis.shape[0]
    current, anti_levels, length = list(range(len(groups))), [], n
    tol = 1e-9 * float(analysis.abs().max())
    while len(anti_levels) < max_folds and length % 2 == 0 and length >= 4:
        half = length // 2
        sym, anti = [], []
        for index in current:
            start, size = groups[index]
            rows = analysis[start:start + size, :length]
            if (rows[:, :half] - rows[:, half:]).abs().max() <= tol:
                sym.append(index)
            elif (rows[:, :half] + rows[:, half:]).abs().max() <= tol:
                anti.append(index)
            else:
                break
        else:
            anti_levels.append(anti)
            current, length = sym, half
            continue
        break
    if not anti_levels:
        return None
    folds = len(anti_levels)
    leaves = [(current, n >> folds)] + [(anti_levels[level - 1], n >> level) for level in range(folds, 0, -1)]
    order, starts, rows, parts = [], [0] * len(groups), [], []
    for members, leaf_length in leaves:
        count = 0
        for index in members:
            start, size = groups[index]
            starts[index] = len(order)
            order.extend(range(start, start + size))
            parts.append(analysis[start:start + size, :leaf_length].reshape(-1))
            count += size
        rows.append(count)
    matrices = torch.cat(parts) if parts else analysis.new_zeros(0)
    pq = None if synthesis is None else fold_synthesis(synthesis[:, order], n - rows[-1])
    return FoldPlan(folds, order, starts, rows, matrices, pq)


class NativeConv1d:
    """A `FastConv1d` run by the fused C kernel, with leaky ReLU on its input fused in.

    Needs channel counts that are multiples of `PANEL` (pad with zero channels).
    `native`: the kernel build to run (default: the "auto" target's).
    """

    def __init__(self, conv: FastConv1d, bf16: bool = False, native: Optional[Kernel] = None) -> None:
        if conv.c_in % PANEL or conv.c_out % PANEL:
            raise ValueError(f"channels must be multiples of {PANEL}")
        native = native or kernel()
        if native is None:
            raise RuntimeError(f"the native kernel is not available: {failure()}")
        if bf16 and not native.bf16:
            raise RuntimeError("bfloat16 mixing needs a CPU with AVX512_BF16")
        self.native = native
        self.conv = conv
        self.padding = conv.padding
        weights, weights16, starts, sizes, panels = [], [], [], [], []
        for g in conv.groups:
            w = g.weight.float().contiguous()  # [K, size*c_out]
            k, ncols = w.shape
            panel = 32 if ncols % 32 == 0 else 16
            if bf16:  # bf16 pairs along K: [panels][K/2][panel][2]
                w16 = w.to(torch.bfloat16).view(k // 2, 2, ncols // panel, panel).permute(2, 0, 3, 1)
                weights16.append(w16.contiguous().view(torch.int16))
            elif g.size == 2:  # complex bin: the compact Hr, Hi of [[Hr, Hi], [-Hi, Hr]], [panels][c_in][panel]
                c_in, c_out = k // 2, ncols // 2
                panel = 32 if c_out % 32 == 0 else 16
                parts = [w[:c_in, :c_out], w[:c_in, c_out:]]
                weights.append(torch.cat([p.reshape(c_in, c_out // panel, panel).permute(1, 0, 2).reshape(-1)
                                          for p in parts]))
            else:  # [panels][K][panel]
                weights.append(w.view(k, ncols // panel, panel).permute(1, 0, 2).contiguous())
            starts.append(g.start)
            sizes.append(g.size)
            panels.append(panel)
        bias = None if conv.bias is None else conv.bias.float().contiguous()
        analysis, synthesis = conv.analysis.float().contiguous(), conv.synthesis.float().contiguous()
        plan = fold_plan(conv.transform.analysis, [(g.start, g.size) for g in conv.groups],
                         conv.transform.synthesis)
        self.fold = plan
        pq = None
        if plan is not None:  # X's rows in the order of the analysis leaves; the synthesis follows
            starts = plan.starts
            synthesis = synthesis[:, plan.order].contiguous()
            leaf_matrices = plan.matrices.float().contiguous()
            self._fold_rows = (ctypes.c_int * len(plan.rows))(*plan.rows)
            pq = plan.synthesis_pq
        else:
            leaf_matrices = torch.zeros(1)
            self._fold_rows = (ctypes.c_int * 1)(0)
        synthesis_pq = pq.float().contiguous() if pq is not None else torch.zeros(1)
        self._keep = [weights, weights16, bias, analysis, synthesis, leaf_matrices, synthesis_pq]  # the C struct points into these
        count = len(starts)
        int_array = ctypes.c_int * count
        self._starts, self._sizes, self._panels = int_array(*starts), int_array(*sizes), int_array(*panels)
        f32, u16 = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_uint16)
        self._weights = (f32 * count)(*[_float_ptr(w) for w in weights])
        self._weights16 = (u16 * count)(*[ctypes.cast(w.data_ptr(), u16) for w in weights16])
        self.desc = _Conv(
            conv.c_in, conv.c_out, conv.block, conv.hop, conv.dilation, count,
            self._starts, self._sizes, self._weights, self._panels,
            _float_ptr(analysis), plan.folds if plan else 0, self._fold_rows, _float_ptr(leaf_matrices),
            _float_ptr(synthesis), int(pq is not None), _float_ptr(synthesis_pq),
            _float_ptr(bias) if bias is not None else None, 0.0, int(bf16), self._weights16,
        )

    def flops_per_frame(self) -> int:
        """FLOPs of one frame as this kernel computes it (folded analysis and synthesis where they apply)."""
        conv, plan = self.conv, self.fold
        if plan is None:
            return conv.flops_per_frame()
        n, hop = conv.block, conv.hop
        leaves = [n >> plan.folds] + [n >> level for level in range(plan.folds, 0, -1)]
        analysis = sum(2 * rows * length for rows, length in zip(plan.rows, leaves)) + plan.folds * n
        synthesis = (2 * (n // 2) * n + hop) if plan.synthesis_pq is not None else 2 * hop * n
        mixing = sum(g.flops_per_frame for g in conv.groups) * conv.c_in * conv.c_out
        return analysis * conv.c_in + mixing + synthesis * conv.c_out

    def flops(self, length: int) -> int:
        """FLOPs of one call over `length` output rows, as this kernel computes them."""
        return self.flops_per_frame() * self.conv.frames(length) * self.conv.dilation

    def covered(self, length: int) -> int:
        return self.conv.covered(length)

    def input_extent(self, length: int) -> int:
        return self.conv.input_extent(length)

    def __call__(self, source: torch.Tensor, origin: int, layout: SequenceLayout, out: torch.Tensor,
                 base: Optional[torch.Tensor], workspace=None, slope: float = 0.01) -> None:
        """As `FastConv1d.__call__` (same buffers and rows); `workspace` is unused."""
        lib = self.native.lib
        self.desc.slope = float(slope)
        conv = self.conv
        frames = conv.frames(layout.total)
        # the C code trusts these: check them (a wrong buffer would corrupt memory, not raise)
        for name, tensor, channels in (("source", source, conv.c_in), ("out", out, conv.c_out),
                                       ("base", base, conv.c_out)):
            _check_buffer(name, tensor, channels)
        if origin < conv.padding or source.shape[0] < origin - conv.padding + conv.input_extent(layout.total):
            raise ValueError("source: too few rows around the sequence for this convolution")
        if min(out.shape[0], base.shape[0] if base is not None else out.shape[0]) < origin + conv.covered(layout.total):
            raise ValueError("out/base: too few rows for the covered output")
        threads = max(1, torch.get_num_threads())
        # frames per task: the spectra of a chunk fit in L2 (~768 KB), and there are
        # at least 4 tasks per thread so that short inputs still keep every thread busy
        share = -(-frames * conv.dilation // (4 * threads))
        chunk = max(6, min(_chunk_cap(conv), -(-share // 6) * 6))
        tasks = -(-frames * conv.dilation // chunk)  # chunks run across phases (hg_fast.c frame_time)
        lay = _Layout(layout.gap, layout.stride, layout.length, layout.batch)
        item = source.element_size()
        src0 = source.data_ptr() + (origin - conv.padding) * conv.c_in * item
        dst = out.data_ptr() + origin * conv.c_out * item
        bs = None if base is None else base.data_ptr() + origin * conv.c_out * item

        def run(first: int, last: int, count: int = 1) -> int:
            return lib.hg_fft_conv(ctypes.byref(self.desc), ctypes.byref(lay), src0, dst, bs,
                                   frames, chunk, first, last, count)

        _dispatch(self.native, run, tasks, threads)


def _chunk_cap(conv: FastConv1d) -> int:
    """Most frames per kernel step, a multiple of 6: as many as have their spectra (X and Y) in ~768 KB
    of L2, or c_in / 4 if that is more, so that wide layers do not re-read their mixing weights
    (32 c_in c_out floats, read once per step) for every few frames."""
    fit = (768 * 1024) // (4 * conv.block * (conv.c_in + conv.c_out))
    return max(6, min(96, max(fit, conv.c_in // 4) // 6 * 6))


def _check_buffer(name: str, tensor: Optional[torch.Tensor], channels: int) -> None:
    if tensor is not None and (tensor.dtype != torch.float32 or not tensor.is_contiguous()
                               or tensor.dim() != 2 or tensor.shape[1] != channels):
        raise ValueError(f"{name}: expected a contiguous float32 [rows, {channels}] tensor")


def _dispatch(native: Kernel, run, tasks: int, threads: int) -> None:
    """Run tasks [0, tasks) on `threads` threads: the kernel's OpenMP, or Python threads without it."""
    threads = min(threads, tasks)
    if threads <= 1:
        codes = [run(0, tasks)]
    elif native.openmp:
        codes = [run(0, tasks, threads)]
    else:
        bounds = [tasks * i // threads for i in range(threads + 1)]
        pool = _threads(threads)
        futures = [pool.submit(run, bounds[i], bounds[i + 1]) for i in range(1, threads)]
        codes = [run(bounds[0], bounds[1])] + [f.result() for f in futures]
    if any(codes):
        raise RuntimeError(f"the FFT convolution kernel failed (code {min(codes)}: -1 no memory, -2 no bf16, "
                           "-3 no vector code)")


class NativePair:
    """A residual pair x + conv2(lrelu(conv1(lrelu(x)))) fused on time tiles by the C kernel.

    Why: run layer by layer, conv1's output is written to memory in full and read back by
    conv2; here each tile's intermediate activation stays in a thread's L2 (hg_fft_pair).
    Tiles recompute conv2's halo of conv1 (2 pad2 rows plus framing, a few percent).
    The result equals the two `NativeConv1d` calls up to float32 rounding.
    """

    TILE_BYTES = 768 * 1024  # conv1's output per tile at most, kept in L2 (2 MB a core on Sapphire Rapids)

    def __init__(self, first: NativeConv1d, second: NativeConv1d, tile_bytes: Optional[int] = None) -> None:
        c1, c2 = first.conv, second.conv
        if c1.c_out != c2.c_in or first.native is not second.native:
            raise ValueError("a pair needs conv1's outputs as conv2's inputs, on one kernel build")
        self.first, self.second, self.native = first, second, first.native
        self.c_in, self.c_out = c1.c_in, c2.c_out
        self.padding = c1.padding + c2.padding  # input rows read before time 0
        self.unit1, self.unit2 = c1.hop * c1.dilation, c2.hop * c2.dilation  # rows per frame (all phases)
        self.halo = 2 * c2.padding  # conv1 rows conv2 reads beyond its tile
        self.max_tile = max(self.unit2, (tile_bytes or self.TILE_BYTES) // (4 * c1.c_out) - self.halo)
        self.chunk = min(_chunk_cap(c1), _chunk_cap(c2))
        self._tilings: dict[tuple[int, int], tuple[int, int, int]] = {}  # (length, threads) -> tiling

    def tiling(self, length: int) -> tuple[int, int, int]:
        """(tiles, conv2 frames per tile, conv1 frames per tile) for `length` rows on the current threads.

        As few tiles as fit max_tile, at least two per thread where the length allows (so short
        inputs keep every thread busy) and a multiple of the threads, each just long enough:
        the rows computed past `length` stay under one frame per tile.
        """
        threads = max(1, torch.get_num_threads())
        key = (length, threads)
        if key not in self._tilings:  # asked several times per call (buffer sizes, covered rows, the call)
            if len(self._tilings) >= 64:  # streaming sees many lengths
                self._tilings.clear()
            self._tilings[key] = self._tiling(length, threads)
        return self._tilings[key]

    def _tiling(self, length: int, threads: int) -> tuple[int, int, int]:
        tiles = max(-(-length // self.max_tile), min(2 * threads, -(-length // (4 * self.unit2))), 1)
        if tiles > threads:  # a multiple of the threads: no thread waits for the last tile alone
            tiles = -(-tiles // threads) * threads
        shortest = -(-(-(-length // tiles)) // self.unit2)

        def plan(frames2: int) -> tuple[int, int, int, int]:
            count = -(-length // (frames2 * self.unit2))
            frames1 = -(-(frames2 * self.unit2 + self.halo) // self.unit1)
            return count * (frames1 * self.unit1 + frames2 * self.unit2), count, frames2, frames1

        # conv1 computes whole frames of unit1 rows: of the tile lengths from the shortest up to
        # one conv1 frame longer (within max_tile), the one whose conv1 rows (tile + halo, rounded
        # up) waste least, counting the tiles it needs
        longer = range(shortest + 1, shortest + max(1, self.unit1 // self.unit2) + 1)
        candidates = [shortest] + [f for f in longer if f * self.unit2 <= self.max_tile]
        _, tiles, frames2, frames1 = min((plan(f) for f in candidates), key=lambda option: option[0])
        return tiles, frames2, frames1

    def tiles(self, length: int) -> int:
        return self.tiling(length)[0]

    def covered(self, length: int) -> int:
        """Output rows written from time 0 for `length` wanted ones."""
        tiles, frames2, _ = self.tiling(length)
        return tiles * frames2 * self.unit2

    def input_extent(self, length: int) -> int:
        """Input rows read from time -padding."""
        tiles, frames2, frames1 = self.tiling(length)
        return (tiles - 1) * frames2 * self.unit2 + frames1 * self.unit1 + 2 * self.first.conv.padding

    def flops(self, length: int) -> float:
        """Arithmetic of one call over `length` rows, the recomputed halos included."""
        tiles, frames2, frames1 = self.tiling(length)
        c1, c2 = self.first.conv, self.second.conv
        per_tile = (self.first.flops_per_frame() * frames1 * c1.dilation
                    + self.second.flops_per_frame() * frames2 * c2.dilation)
        return float(per_tile * tiles)

    def __call__(self, source: torch.Tensor, origin: int, layout: SequenceLayout, out: torch.Tensor,
                 base: Optional[torch.Tensor], slope: float, accumulate: bool = False,
                 divisor: Optional[float] = None, activate: Optional[float] = None) -> None:
        """out[t] = (base[t] +) conv2(lrelu(conv1(lrelu(source))))[t] on valid rows, 0 on the others.

        Buffers as for `NativeConv1d` (time 0 at row `origin`, zero outside the examples),
        with this pair's `padding`, `input_extent` and `covered`; `out` must not be `source`.
        `accumulate`: out[t] += that value instead (the resblock fusion's sum), then divided
        by `divisor` if given (its average), with PyTorch's order of operations, then passed
        through leaky_relu(., activate) if given (the next layer's input activation).
        """
        if out.data_ptr() == source.data_ptr():
            raise ValueError("out: a fused pair cannot write over its input (other tiles still read it)")
        _check_buffer("source", source, self.c_in)
        _check_buffer("out", out, self.c_out)
        _check_buffer("base", base, self.c_out)
        total = layout.total
        if origin < self.padding or source.shape[0] < origin - self.padding + self.input_extent(total):
            raise ValueError("source: too few rows around the sequence for this pair")
        if min(out.shape[0], base.shape[0] if base is not None else out.shape[0]) < origin + self.covered(total):
            raise ValueError("out/base: too few rows for the covered output")
        self.first.desc.slope = self.second.desc.slope = float(slope)
        lay = _Layout(layout.gap, layout.stride, layout.length, layout.batch)
        item = source.element_size()
        src = source.data_ptr() + origin * self.c_in * item
        dst = out.data_ptr() + origin * self.c_out * item
        bs = None if base is None else base.data_ptr() + origin * self.c_out * item
        lib = self.native.lib

        tiles, frames2, frames1 = self.tiling(total)

        def run(first: int, last: int, count: int = 1) -> int:
            return lib.hg_fft_pair(ctypes.byref(self.first.desc), ctypes.byref(self.second.desc), ctypes.byref(lay),
                                   src, dst, bs, frames1, frames2, self.chunk, first, last, count,
                                   int(accumulate), float(divisor or 0.0), int(activate is not None),
                                   float(activate or 0.0))

        _dispatch(self.native, run, tiles, max(1, torch.get_num_threads()))
