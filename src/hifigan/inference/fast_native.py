"""The fused fast-convolution kernel (C source in `fast_kernels.py`): built once with the system C compiler, called via ctypes.

Why C: in PyTorch a fast convolution is five passes over tensors of tens of MB
(activated input, spectra, mixed spectra, outputs, residual) and ~20 small GEMM
calls per layer; the fused kernel keeps a chunk of frames in L2 and touches
memory once, which makes it ~1.5x faster than the same algorithms in PyTorch. The kernel needs
AVX-512 and a C compiler (gcc/cc) at first use; the shared library is cached
under `$HIFIGAN_CACHE_DIR` (default `~/.cache/hifigan/kernels`), keyed by the
source and the compiler command. Without them `available()` is False and the
callers use the PyTorch implementation in fast_conv.py (same results).

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import torch

from .fast_conv import FastConv1d, SequenceLayout
from .fast_kernels import SOURCE

FLAGS = ["-O3", "-march=native", "-shared", "-fPIC", "-std=gnu11"]
# OpenMP: the library then needs libgomp.so.1, which resolves to the copy PyTorch already
# loaded, so the kernel shares PyTorch's (spinning, ready) threads
OPENMP = ["-fopenmp"]
PANEL = 16  # channel counts are padded to a multiple of this for the kernel


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
        ("synthesis", ctypes.POINTER(ctypes.c_float)),
        ("bias", ctypes.POINTER(ctypes.c_float)),
        ("slope", ctypes.c_float),
        ("bf16", ctypes.c_int),
        ("g_weight16", ctypes.POINTER(ctypes.POINTER(ctypes.c_uint16))),
    ]


class _Layout(ctypes.Structure):
    _fields_ = [("gap", ctypes.c_long), ("stride", ctypes.c_long),
                ("length", ctypes.c_long), ("batch", ctypes.c_long)]


_lock = threading.Lock()
_library: Optional[ctypes.CDLL] = None
_failure: Optional[str] = None
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


def _compile(compiler: str, source: bytes, flags: list[str]) -> Path:
    identity = " ".join([compiler] + flags) + _cpu_identity()
    key = hashlib.sha256(source + identity.encode()).hexdigest()[:16]
    target = cache_dir() / f"hifigan_fast_{key}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            built = Path(tmp) / target.name
            code = Path(tmp) / "fast_kernels.c"
            code.write_bytes(source)
            result = subprocess.run([compiler, *flags, str(code), "-o", str(built)],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"{compiler} failed: {result.stderr.strip()[:500]}")
            os.replace(built, target)  # atomic: concurrent builders agree on the result
    return target


def _build() -> ctypes.CDLL:
    compiler = _compiler()
    if compiler is None:
        raise RuntimeError("no C compiler (gcc, cc or clang) on PATH")
    source = SOURCE.encode()
    try:
        library = ctypes.CDLL(str(_compile(compiler, source, FLAGS + OPENMP)))
    except (RuntimeError, OSError):  # no OpenMP (compiler or runtime): threads come from Python
        library = ctypes.CDLL(str(_compile(compiler, source, FLAGS)))
    library.hg_has_avx512.restype = ctypes.c_int
    library.hg_has_bf16.restype = ctypes.c_int
    library.hg_openmp.restype = ctypes.c_int
    library.hg_fft_conv.restype = ctypes.c_int
    library.hg_fft_conv.argtypes = [
        ctypes.POINTER(_Conv), ctypes.POINTER(_Layout), ctypes.c_void_p, ctypes.c_void_p,
        ctypes.c_void_p, ctypes.c_long, ctypes.c_int, ctypes.c_long, ctypes.c_long, ctypes.c_int,
    ]
    if not library.hg_has_avx512():
        raise RuntimeError("this CPU (or compiler) has no AVX-512")
    return library


def library() -> Optional[ctypes.CDLL]:
    """The loaded kernel library, building it on first use; None if it cannot be had (see `failure`)."""
    global _library, _failure
    with _lock:
        if _library is None and _failure is None:
            if os.environ.get("HIFIGAN_NO_NATIVE"):
                _failure = "disabled by HIFIGAN_NO_NATIVE"
            else:
                try:
                    _library = _build()
                except (OSError, RuntimeError) as exc:
                    _failure = str(exc)
        return _library


def available() -> bool:
    return library() is not None


def bf16_available() -> bool:
    """Whether the kernel can mix in bfloat16 (AVX512_BF16 dot products)."""
    lib = library()
    return lib is not None and bool(lib.hg_has_bf16())


def failure() -> Optional[str]:
    """Why the native kernel is not available (None if it is or was not tried)."""
    library()
    return _failure


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


class NativeConv1d:
    """A `FastConv1d` run by the fused C kernel, with leaky ReLU on its input fused in.

    Needs channel counts that are multiples of `PANEL` (pad with zero channels).
    """

    def __init__(self, conv: FastConv1d, bf16: bool = False) -> None:
        if conv.c_in % PANEL or conv.c_out % PANEL:
            raise ValueError(f"channels must be multiples of {PANEL}")
        if bf16 and not bf16_available():
            raise RuntimeError("bfloat16 mixing needs a CPU with AVX512_BF16")
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
        self._keep = [weights, weights16, bias, analysis, synthesis]  # the C struct points into these
        count = len(starts)
        int_array = ctypes.c_int * count
        self._starts, self._sizes, self._panels = int_array(*starts), int_array(*sizes), int_array(*panels)
        f32, u16 = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_uint16)
        self._weights = (f32 * count)(*[_float_ptr(w) for w in weights])
        self._weights16 = (u16 * count)(*[ctypes.cast(w.data_ptr(), u16) for w in weights16])
        self.desc = _Conv(
            conv.c_in, conv.c_out, conv.block, conv.hop, conv.dilation, count,
            self._starts, self._sizes, self._weights, self._panels,
            _float_ptr(analysis), _float_ptr(synthesis),
            _float_ptr(bias) if bias is not None else None, 0.0, int(bf16), self._weights16,
        )

    def covered(self, length: int) -> int:
        return self.conv.covered(length)

    def input_extent(self, length: int) -> int:
        return self.conv.input_extent(length)

    def __call__(self, source: torch.Tensor, origin: int, layout: SequenceLayout, out: torch.Tensor,
                 base: Optional[torch.Tensor], workspace=None, slope: float = 0.01) -> None:
        """As `FastConv1d.__call__` (same buffers and rows); `workspace` is unused."""
        lib = library()
        self.desc.slope = float(slope)
        conv = self.conv
        frames = conv.frames(layout.total)
        # the C code trusts these: check them (a wrong buffer would corrupt memory, not raise)
        for name, tensor, channels in (("source", source, conv.c_in), ("out", out, conv.c_out),
                                       ("base", base, conv.c_out)):
            if tensor is not None and (tensor.dtype != torch.float32 or not tensor.is_contiguous()
                                       or tensor.dim() != 2 or tensor.shape[1] != channels):
                raise ValueError(f"{name}: expected a contiguous float32 [rows, {channels}] tensor")
        if origin < conv.padding or source.shape[0] < origin - conv.padding + conv.input_extent(layout.total):
            raise ValueError("source: too few rows around the sequence for this convolution")
        if min(out.shape[0], base.shape[0] if base is not None else out.shape[0]) < origin + conv.covered(layout.total):
            raise ValueError("out/base: too few rows for the covered output")
        threads = max(1, torch.get_num_threads())
        # frames per task: the spectra of a chunk fit in L2 (~768 KB), and there are
        # at least 4 tasks per thread so that short inputs still keep every thread busy
        cap = max(6, min(96, (768 * 1024) // (4 * conv.block * (conv.c_in + conv.c_out)) // 6 * 6))
        share = -(-frames * conv.dilation // (4 * threads))
        chunk = max(6, min(cap, -(-share // 6) * 6))
        tasks = conv.dilation * (-(-frames // chunk))
        threads = min(threads, tasks)
        lay = _Layout(layout.gap, layout.stride, layout.length, layout.batch)
        item = source.element_size()
        src0 = source.data_ptr() + (origin - conv.padding) * conv.c_in * item
        dst = out.data_ptr() + origin * conv.c_out * item
        bs = None if base is None else base.data_ptr() + origin * conv.c_out * item

        def run(first: int, last: int, count: int = 1) -> int:
            return lib.hg_fft_conv(ctypes.byref(self.desc), ctypes.byref(lay), src0, dst, bs,
                                   frames, chunk, first, last, count)

        if threads == 1:
            codes = [run(0, tasks)]
        elif lib.hg_openmp():
            codes = [run(0, tasks, threads)]
        else:
            bounds = [tasks * i // threads for i in range(threads + 1)]
            pool = _threads(threads)
            futures = [pool.submit(run, bounds[i], bounds[i + 1]) for i in range(1, threads)]
            codes = [run(bounds[0], bounds[1])] + [f.result() for f in futures]
        if any(codes):
            raise RuntimeError(f"the FFT convolution kernel failed (code {min(codes)}: -1 no memory, -2 no bf16)")
