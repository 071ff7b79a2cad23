"""Check that the ARM NEON (and AVX2) builds of the fused C kernel give the x86 result bit for bit.

Why: hg_simd.h promises that every vector variant computes the same float32 sums in the
same order, but only the variant of the developer's CPU is exercised by the tests. This
script records a few small convolutions and fused residual pairs as Python runs them on
this machine (the "auto" build: AVX-512 where the CPU has it), writes each call to a case
file, replays it with scripts/neon_harness.c built for AVX2 (natively) and for 64-bit ARM
(aarch64-linux-gnu-gcc, static, run under qemu-aarch64), and compares the whole output
buffer (every row: examples, zeroed gaps, tail and untouched margins) bit for bit. A third
harness built like the "auto" library (-march=native) checks that the replay itself is
faithful, so a difference can be blamed on the variant and not on the harness.

    .venv/bin/python scripts/check_neon.py [--keep]

One line per case; exit status 0 when every variant is identical, 1 on any difference,
2 when the cross compiler, qemu or the native kernel is missing. Binaries and case files go
to build/neon_check/ (removed afterwards unless --keep). Single-threaded and small: a few
seconds of compiling per build and well under a minute under qemu.

Case file (little-endian, written by `write_case`, read by neon_harness.c):
    8 bytes "HGCASE01"; i64 kind (1 conv, 2 pair); i64 nconv (1 or 2)
    per conv: i64 c_in, c_out, n, hop, dil, ngroups, folds, fold_synthesis, bf16;
        arrays slope (f32, 1), g_start, g_size, g_panel (i32, ngroups), ngroups x g_weight (f32),
        analysis (f32), fold_rows (i32), fold_analysis, synthesis, synthesis_pq, bias (f32)
        where an array is i64 count then count items, count -1 meaning a NULL pointer
    layout: i64 gap, stride, length, batch
    i64 nbuffers; per buffer: i64 rows, cols, then an array (f32, rows*cols)
    i64 ncalls; per call: pointers src, out, base, each i64 buffer index (-1: NULL) and i64 offset in
        floats; then conv: i64 frames, chunk, task0, task1 / pair: i64 frames1, frames2, chunk, task0, task1,
        accumulate, then f32 divisor (0: none), i64 activate, f32 after (the leaky ReLU slope)
The harness writes the final contents of the buffer `out` points into, as raw f32.
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from hifigan.inference import fast_kernels, fast_native
from hifigan.inference.fast_conv import FastConv1d, SequenceLayout

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "scripts" / "neon_harness.c"
WORK = ROOT / "build" / "neon_check"
CROSS_CC, QEMU = "aarch64-linux-gnu-gcc", "qemu-aarch64"
SLOPE = 0.1
KIND_CONV, KIND_PAIR = 1, 2
# hg_conv's fields in declaration order, as write_case serialises them (checked against every build)
CONV_FIELDS = ["c_in", "c_out", "n", "hop", "dil", "ngroups", "g_start", "g_size", "g_weight", "g_panel",
               "analysis", "folds", "fold_rows", "fold_analysis", "synthesis", "fold_synthesis",
               "synthesis_pq", "bias", "slope", "bf16", "g_weight16"]
LAYOUT_FIELDS = ["gap", "stride", "length", "batch"]


class Unavailable(Exception):
    """A tool the check needs is missing (exit status 2)."""


# ---- the cases -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    channels: int
    batch: int
    length: int
    convs: tuple[tuple[int, int], ...]  # (kernel size, dilation); two for a fused pair
    base: str = "separate"  # conv: "separate", "none" or "inplace" (out is base); a pair adds its input
    bias: bool = True
    extra_gap: int = 0  # gap rows beyond the padding
    tile_bytes: Optional[int] = None  # pairs: small, for several tiles
    accumulate: bool = False  # pairs: add into out (the resblock sum), divide by 3 (the average), leaky ReLU 0.1


CASES = [
    Case("fft k7 d3", 32, 3, 150, ((7, 3),), extra_gap=4),
    Case("fft k11 d1", 48, 2, 257, ((11, 1),), base="none", bias=False),
    Case("fft k11 d5", 32, 3, 123, ((11, 5),), base="inplace"),
    Case("winograd k3 d1", 48, 3, 101, ((3, 1),), extra_gap=3),
    Case("fft k7 d1", 80, 2, 120, ((7, 1),)),  # 80 > KB = 64 inputs: the mixing sums run in two blocks
    Case("winograd k3 d1", 32, 2, 300, ((3, 1),), base="inplace"),
    Case("pair k11 d5 + k11 d1", 32, 3, 200, ((11, 5), (11, 1)), tile_bytes=120 * 32 * 4),
    Case("pair k3 d3 + k3 d1", 48, 2, 250, ((3, 3), (3, 1)), tile_bytes=100 * 48 * 4),
    Case("pair k7 d3 + k7 d1, sum", 32, 2, 220, ((7, 3), (7, 1)), tile_bytes=90 * 32 * 4, accumulate=True),
]


@dataclass
class Recorded:
    """One case as Python ran it: the kernel calls, the buffers, the x86 output and a conv1d reference."""

    kind: int
    convs: list[fast_native.NativeConv1d]
    calls: list[tuple]
    buffers: list[torch.Tensor]  # the tensors the calls saw (their pointers lie in these)
    before: list[torch.Tensor]  # their contents before the calls
    result: torch.Tensor  # the out buffer after the calls
    reference: torch.Tensor  # conv1d in float64 on the examples [batch, length, C]
    layout: SequenceLayout
    origin: int
    tiles: int = 0


class _RecordingLib:
    """Stands in for the kernel library: records the arguments of each call, then makes it."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib, self.calls = lib, []

    def hg_fft_conv(self, *args):
        self.calls.append(args)
        return self.lib.hg_fft_conv(*args)

    def hg_fft_pair(self, *args):
        self.calls.append(args)
        return self.lib.hg_fft_pair(*args)


class _RecordingKernel:
    """A fast_native.Kernel whose library records its calls (what NativeConv1d/NativePair read of it)."""

    def __init__(self, kernel: fast_native.Kernel) -> None:
        self.lib = _RecordingLib(kernel.lib)
        self.variant, self.target, self.bf16, self.openmp = kernel.variant, kernel.target, kernel.bf16, kernel.openmp


def _weights(case: Case, index: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    k = case.convs[index][0]
    c = case.channels
    return torch.randn(c, c, k) * (0.6 / k ** 0.5), (torch.randn(c) * 0.1 if case.bias else None)


def _conv1d(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], dilation: int) -> torch.Tensor:
    """[B, L, C] float64 'same' conv of leaky_relu(x), the reference."""
    k = weight.shape[-1]
    y = F.conv1d(F.leaky_relu(x.double().transpose(1, 2), SLOPE), weight.double(),
                 None if bias is None else bias.double(), padding=dilation * (k - 1) // 2, dilation=dilation)
    return y.transpose(1, 2)


def record(case: Case, native: fast_native.Kernel, seed: int) -> Recorded:
    """Run `case` on the x86 kernel, keeping what the C calls were given and what they wrote."""
    torch.manual_seed(seed)
    kernel = _RecordingKernel(native)
    params = [_weights(case, i) for i in range(len(case.convs))]
    convs = [fast_native.NativeConv1d(FastConv1d(w, b, d), native=kernel)
             for (w, b), (_, d) in zip(params, case.convs)]
    c, tail = case.channels, 5  # rows past what the kernel may touch: must stay as they were
    if len(convs) == 1:
        conv = convs[0]
        layout = SequenceLayout(case.batch, case.length, gap=conv.padding + case.extra_gap)
        origin = conv.padding
        rows = origin + max(conv.input_extent(layout.total), conv.covered(layout.total)) + tail
    else:
        pair = fast_native.NativePair(*convs, tile_bytes=case.tile_bytes)
        layout = SequenceLayout(case.batch, case.length, gap=max(convs[0].padding, convs[1].padding) + case.extra_gap)
        origin = pair.padding
        rows = origin + max(pair.input_extent(layout.total), pair.covered(layout.total)) + tail
    x = torch.randn(case.batch, case.length, c)
    source = torch.zeros(rows, c)  # zero outside the examples
    layout.valid(source, origin).copy_(x)
    out = torch.full((rows, c), float("nan"))
    if len(convs) == 1:
        base_init = torch.randn(case.batch, case.length, c)
        if case.base == "separate":
            base = torch.zeros(rows, c)
            layout.valid(base, origin).copy_(base_init)
        elif case.base == "inplace":
            layout.valid(out, origin).copy_(base_init)
            base = out
        else:
            base, base_init = None, torch.zeros_like(base_init)
        buffers = [source, out] + ([base] if case.base == "separate" else [])
        before = [b.clone() for b in buffers]
        convs[0](source, origin, layout, out, base, slope=SLOPE)
        (w, b), (_, d) = params[0], case.convs[0]
        reference = base_init.double() + _conv1d(x, w, b, d)
        kind, tiles = KIND_CONV, 0
    else:
        total = torch.zeros(case.batch, case.length, c)
        if case.accumulate:  # out holds the sum so far: zero outside the examples, like the stage buffer
            out.zero_()
            total = torch.randn(case.batch, case.length, c)
            layout.valid(out, origin).copy_(total)
        buffers = [source, out]
        before = [b.clone() for b in buffers]
        # base is the input: the residual
        pair(source, origin, layout, out, source, SLOPE, accumulate=case.accumulate,
             divisor=3.0 if case.accumulate else None, activate=0.1 if case.accumulate else None)
        (w1, b1), (w2, b2) = params
        hidden = _conv1d(x, w1, b1, case.convs[0][1])
        reference = x.double() + _conv1d(hidden, w2, b2, case.convs[1][1])
        if case.accumulate:
            reference = torch.nn.functional.leaky_relu((total.double() + reference) / 3, 0.1)
        kind, tiles = KIND_PAIR, pair.tiling(layout.total)[0]
    return Recorded(kind, convs, list(kernel.lib.calls), buffers, before, out.clone(), reference, layout, origin,
                    tiles)


# ---- writing a case --------------------------------------------------------------------------


def _i64(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}q", *values)


def _array(values: Optional[np.ndarray], dtype: str) -> bytes:
    if values is None:
        return _i64(-1)
    flat = np.ascontiguousarray(values, dtype=dtype).reshape(-1)
    return _i64(flat.size) + flat.tobytes()


def _address(pointer) -> Optional[int]:
    return ctypes.cast(pointer, ctypes.c_void_p).value


def _kept_tensor(conv: fast_native.NativeConv1d, pointer) -> Optional[np.ndarray]:
    """The array of the conv's own tensors (`_keep`) that a desc pointer points at (None for NULL)."""
    address = _address(pointer)
    if address is None:
        return None
    kept = [t for item in conv._keep for t in (item if isinstance(item, list) else [item]) if t is not None]
    matches = [t for t in kept if t.data_ptr() == address]
    if len(matches) != 1:
        raise RuntimeError(f"a desc pointer ({address:#x}) is not the start of one tensor the conv keeps")
    return matches[0].detach().contiguous().numpy()


def _int_array(pointer, kept: ctypes.Array) -> np.ndarray:
    """A desc int array, checked to be the ctypes array the conv keeps (whose length it has)."""
    if _address(pointer) != ctypes.addressof(kept):
        raise RuntimeError("a desc int pointer is not the array the conv keeps")
    return np.array(list(kept), dtype="<i4")


def _conv_bytes(conv: fast_native.NativeConv1d, desc: fast_native._Conv) -> bytes:
    names = [name for name, *_ in desc._fields_]
    if names != CONV_FIELDS:
        raise RuntimeError(f"fast_native._Conv has fields {names}; update CONV_FIELDS and write_case")
    if desc.bf16:
        raise RuntimeError("bf16 convs are not part of this check")
    count = desc.ngroups
    parts = [_i64(desc.c_in, desc.c_out, desc.n, desc.hop, desc.dil, count, desc.folds, desc.fold_synthesis,
                  desc.bf16),
             _array(np.array([desc.slope]), "<f4"),
             _array(_int_array(desc.g_start, conv._starts), "<i4"),
             _array(_int_array(desc.g_size, conv._sizes), "<i4"),
             _array(_int_array(desc.g_panel, conv._panels), "<i4")]
    parts += [_array(_kept_tensor(conv, desc.g_weight[g]), "<f4") for g in range(count)]
    parts += [_array(_kept_tensor(conv, desc.analysis), "<f4"),
              _array(_int_array(desc.fold_rows, conv._fold_rows), "<i4")]
    parts += [_array(_kept_tensor(conv, getattr(desc, name)), "<f4")
              for name in ("fold_analysis", "synthesis", "synthesis_pq", "bias")]
    return b"".join(parts)


def _pointer(buffers: list[torch.Tensor], address: Optional[int]) -> bytes:
    """(buffer index, offset in floats) of a pointer into one of the buffers; (-1, 0) for NULL."""
    if address is None:
        return _i64(-1, 0)
    for index, buffer in enumerate(buffers):
        start = buffer.data_ptr()
        if start <= address <= start + buffer.numel() * 4 and (address - start) % 4 == 0:
            return _i64(index, (address - start) // 4)
    raise RuntimeError(f"a kernel argument ({address:#x}) points into none of the case's buffers")


def write_case(path: Path, rec: Recorded) -> None:
    """The case file of `rec` (format: the module docstring)."""
    parts = [b"HGCASE01", _i64(rec.kind, len(rec.convs))]
    first_call = rec.calls[0]
    descs = [arg._obj for arg in first_call[:len(rec.convs)]]  # byref(desc) arguments
    for conv, desc in zip(rec.convs, descs):
        if desc is not conv.desc:
            raise RuntimeError("the recorded call does not use the convs' own descriptors")
        parts.append(_conv_bytes(conv, desc))
    lay = first_call[len(rec.convs)]._obj
    parts.append(_i64(*(getattr(lay, name) for name in LAYOUT_FIELDS)))
    parts.append(_i64(len(rec.before)))
    for buffer in rec.before:
        parts += [_i64(*buffer.shape), _array(buffer.numpy(), "<f4")]
    parts.append(_i64(len(rec.calls)))
    for call in rec.calls:
        pointers = call[len(rec.convs) + 1:len(rec.convs) + 4]
        if any(arg._obj is not d for arg, d in zip(call[:len(rec.convs)], descs)):
            raise RuntimeError("the calls of one case use different descriptors")
        parts += [_pointer(rec.buffers, p) for p in pointers]
        scalars = call[len(rec.convs) + 4:]  # frames.. task1, the thread count (always 1) [, accumulate, divisor]
        if rec.kind == KIND_CONV:
            parts.append(_i64(*scalars[:4]))
        else:
            parts.append(_i64(*scalars[:5], scalars[6]) + struct.pack("<f", scalars[7]) + _i64(scalars[8])
                         + struct.pack("<f", scalars[9]))
    path.write_bytes(b"".join(parts))


# ---- building and running the harness --------------------------------------------------------


@dataclass(frozen=True)
class Build:
    label: str
    compiler: str
    flags: tuple[str, ...]
    runner: tuple[str, ...] = ()  # e.g. qemu-aarch64


def builds() -> list[Build]:
    """Native control (like the "auto" library), AVX2 + FMA natively, NEON under qemu."""
    compiler = fast_native._compiler()
    if compiler is None:
        raise Unavailable("no C compiler (gcc, cc or clang) on PATH")
    missing = [tool for tool in (CROSS_CC, QEMU) if shutil.which(tool) is None]
    if missing:
        raise Unavailable(f"{' and '.join(missing)} not found on PATH (Debian: apt-get install "
                          "gcc-aarch64-linux-gnu qemu-user)")
    found = [Build("native", compiler, fast_native.TARGETS["auto"])]
    if {"avx2", "fma"} <= fast_native.cpu_flags():
        found.append(Build("avx2", compiler, fast_native.TARGETS["avx2"]))
    found.append(Build("neon", CROSS_CC, fast_native.TARGETS["neon"] + ("-static",), (QEMU,)))
    return found


def snapshot_sources(folder: Path) -> dict[str, bytes]:
    """The kernel sources Python builds from, copied to `folder` (others may edit src/ meanwhile)."""
    sources = fast_kernels.sources()
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in sources.items():
        (folder / name).write_bytes(text)
    return sources


def compile_harness(build: Build, sources: Path, work: Path) -> Path:
    flags = ["-O3", "-std=gnu11", "-Wall", "-Wno-unknown-pragmas", *build.flags]
    binary = work / f"neon_harness_{build.label}"
    command = [build.compiler, *flags, f"-I{sources}", str(HARNESS), str(sources / fast_kernels.MAIN),
               "-o", str(binary)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()[:2000]}")
    return binary


def run_harness(build: Build, binary: Path, *args: str) -> str:
    result = subprocess.run([*build.runner, str(binary), *args], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"{build.label} harness failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def check_fields(build: Build, binary: Path) -> None:
    """The build's hg_conv/hg_layout field names are those write_case and the harness assume."""
    table: dict[str, list[str]] = {}
    for line in run_harness(build, binary, "fields").splitlines():
        structure, field, *_ = line.split()
        if field != "-":
            table.setdefault(structure, []).append(field)
    for structure, expected in (("hg_conv", CONV_FIELDS), ("hg_layout", LAYOUT_FIELDS)):
        if table.get(structure) != expected:
            raise RuntimeError(f"the {build.label} build's {structure} has fields {table.get(structure)}; "
                               "update check_neon.py and neon_harness.c")


# ---- comparing -------------------------------------------------------------------------------


def _row_kinds(rec: Recorded, rows: int) -> np.ndarray:
    """Per buffer row: 'example', 'gap' (before, between or after the examples up to the covered end) or 'margin'."""
    kinds = np.full(rows, "margin", dtype=object)
    layout, origin = rec.layout, rec.origin
    for t in range(rows - origin):
        r = t - layout.gap
        inside = 0 <= r < layout.batch * layout.stride and r % layout.stride < layout.length
        kinds[origin + t] = "example" if inside else "gap"
    return kinds


def describe(rec: Recorded, got: np.ndarray, want: np.ndarray) -> str:
    """Where two outputs differ: max abs difference, count, rows (time = row - origin) and their kinds."""
    bad = got.view("<u4") != want.view("<u4")
    rows = np.flatnonzero(bad.any(axis=1))
    both = bad & np.isfinite(got) & np.isfinite(want)
    worst = float(np.abs(got[both].astype(np.float64) - want[both]).max()) if both.any() else float("nan")
    kinds = _row_kinds(rec, got.shape[0])
    counts = {kind: int(np.sum(kinds[rows] == kind)) for kind in ("example", "gap", "margin")}
    times = rows - rec.origin
    spans, start = [], times[0]
    for prev, cur in zip(times, list(times[1:]) + [None]):
        if cur is None or cur != prev + 1:
            spans.append(f"{start}" if start == prev else f"{start}..{prev}")
            if cur is not None:
                start = cur
    shown = ", ".join(spans[:8]) + (f", ... ({len(spans)} spans)" if len(spans) > 8 else "")
    nonfinite = int((bad & ~(np.isfinite(got) & np.isfinite(want))).sum())
    return (f"max abs diff {worst:.3g} in {int(bad.sum())} values ({nonfinite} non-finite), rows of times {shown}; "
            f"{counts['example']} example / {counts['gap']} gap / {counts['margin']} margin rows")


def reference_error(rec: Recorded) -> float:
    got = rec.layout.valid(rec.result, rec.origin).double()
    return float((got - rec.reference).abs().max())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep build/neon_check/ (binaries, cases, outputs)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # one task range per call, like the harness (threads = 1)
    try:
        targets = builds()
        native = fast_native.kernel("auto")
        if native is None:
            raise Unavailable(f"the x86 kernel is not available: {fast_native.failure('auto')}")
    except Unavailable as exc:
        print(f"check_neon: {exc}", file=sys.stderr)
        return 2
    work = WORK
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    sources = snapshot_sources(work / "src")
    binaries = {}
    for build in targets:
        binaries[build.label] = compile_harness(build, work / "src", work)
        check_fields(build, binaries[build.label])
    if fast_kernels.sources() != sources:
        print("check_neon: the kernel sources changed while the harness was built; run it again", file=sys.stderr)
        return 2
    digest = hashlib.sha256(b"".join(sources.values())).hexdigest()[:12]
    print(f"kernel sources {digest}; python: {native.target} build ({native.variant}"
          f"{', openmp' if native.openmp else ''}), torch threads 1; harness builds: "
          + ", ".join(f"{b.label} ({' '.join(b.runner + (b.compiler,) + b.flags)})" for b in targets))
    failed = False
    for number, case in enumerate(CASES):
        rec = record(case, native, seed=1000 + number)
        case_path = work / f"case{number}.bin"
        write_case(case_path, rec)
        want = rec.result.numpy()
        label = (f"{case.name:<22} c{case.channels} b{case.batch}x{case.length}"
                 + (f" {rec.tiles} tiles" if rec.tiles else "") + f" {len(rec.calls)} call(s)")
        same, notes = [f"python-{native.variant}"], []
        for build in targets:
            out_path = work / f"case{number}.{build.label}.out"
            variant = run_harness(build, binaries[build.label], str(case_path), str(out_path)).strip()
            got = np.fromfile(out_path, dtype="<f4").reshape(want.shape)
            name = f"{build.label}:{variant}"
            if np.array_equal(got.view("<u4"), want.view("<u4")):
                same.append(name)
            else:
                failed = True
                notes.append(f"{name} DIFFERS from python-{native.variant}: {describe(rec, got, want)}")
        status = "identical" if not notes else "DIFFERENT"
        print(f"{label}: {' = '.join(same)} {status}; vs conv1d (float64) max abs {reference_error(rec):.2g}")
        for note in notes:
            print(f"    {note}")
    if not args.keep:
        shutil.rmtree(work)
    print("all variants bit-identical" if not failed else "MISMATCH: some variants differ (see above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
