"""The native kernel's build: C sources shipped as package data, a cache keyed by them, one struct definition."""
from __future__ import annotations

import ctypes
import fnmatch
import stat
import sys
import tomllib
from pathlib import Path

import pytest

from hifigan.errors import ConfigError
from hifigan.inference import fast_kernels, fast_native
from hifigan.inference.fast import FFTGenerator

from test_fast import _assert_matches_eager, _generator

REPO = Path(__file__).resolve().parents[1]


def test_the_c_sources_are_package_data():
    sources = fast_kernels.sources()
    assert {"hg_fast.c", "hg_fast.h", "hg_simd.h"} <= set(sources)
    assert b"typedef struct" in sources["hg_fast.h"] and b"hg_fft_conv" in sources["hg_fast.c"]
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["hifigan"]
    for name in sources:  # a wheel carries every file the build reads
        assert any(fnmatch.fnmatch(f"inference/native/{name}", pattern) for pattern in patterns), name
    assert not hasattr(fast_kernels, "SOURCE")  # no second copy of the C code inside Python


def _fake_compiler(folder: Path) -> Path:
    """A 'compiler' that copies its source to -o and logs each call: builds without compiling."""
    script = folder / "fake-cc"
    log = folder / "calls"
    script.write_text(f"#!{sys.executable}\n"
                      "import shutil, sys\n"
                      f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
                      "args = sys.argv[1:]\n"
                      "shutil.copy(args[-3], args[args.index('-o') + 1])\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_the_build_cache_is_keyed_by_every_source_file_and_the_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("HIFIGAN_CACHE_DIR", str(tmp_path / "cache"))
    compiler = str(_fake_compiler(tmp_path))
    sources = fast_kernels.sources()
    flags = fast_native.FLAGS + list(fast_native.TARGETS["avx2"])
    first = fast_native.compile_library(compiler, sources, flags, "avx2")
    assert first.parent == tmp_path / "cache" / "kernels" and "avx2" in first.name
    assert fast_native.compile_library(compiler, sources, flags, "avx2") == first  # cached: not rebuilt
    header = dict(sources, **{"hg_simd.h": sources["hg_simd.h"] + b"/* changed */\n"})
    paths = {first, fast_native.compile_library(compiler, header, flags, "avx2"),
             fast_native.compile_library(compiler, sources, flags + ["-DHG_OTHER"], "avx2")}
    assert len(paths) == 3 and all(p.exists() for p in paths)
    assert len((tmp_path / "calls").read_text().splitlines()) == 3


def test_a_compiler_error_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HIFIGAN_CACHE_DIR", str(tmp_path))
    broken = dict(fast_kernels.sources(), **{"hg_fast.c": b"#error one\n#error two\n"})
    with pytest.raises(RuntimeError, match="failed: .*one") as caught:
        fast_native.compile_library(fast_native._compiler() or "cc", broken, fast_native.FLAGS, "auto")
    assert "\n" not in str(caught.value)


@pytest.fixture
def built(monkeypatch) -> fast_native.Kernel:
    """The kernel of this machine, built even where HIFIGAN_NO_NATIVE is set (these tests need a C compiler)."""
    monkeypatch.delenv("HIFIGAN_NO_NATIVE", raising=False)
    monkeypatch.setattr(fast_native, "_kernels", {})
    kernel = fast_native.kernel()
    assert kernel is not None, fast_native.failure()
    return kernel


def test_the_ctypes_mirrors_match_the_c_structures(built):
    table = fast_native.c_structures(built.lib)
    assert set(table) == {"hg_conv", "hg_layout"}
    assert fast_native.layout_mismatch(built.lib) is None
    size, fields = table["hg_conv"]
    assert size == ctypes.sizeof(fast_native._Conv) and [f[0] for f in fields][:2] == ["c_in", "c_out"]


def _changed(kind: str) -> type[ctypes.Structure]:
    fields = list(fast_native._Conv._fields_)
    if kind == "type":  # dil as a long: every later offset moves
        fields = [(n, ctypes.c_long if n == "dil" else t) for n, t in fields]
    elif kind == "order":  # two ints swapped: same offsets, other names
        i, j = [n for n, _ in fields].index("hop"), [n for n, _ in fields].index("dil")
        fields[i], fields[j] = fields[j], fields[i]
    else:  # the last field forgotten
        fields = fields[:-1]
    return type("_Conv", (ctypes.Structure,), {"_fields_": fields})


@pytest.mark.parametrize("kind,message", [
    ("type", "field 'dil' is at offset 16 with size 4 in C, offset 16 with size 8 in Python"),
    ("order", "C has field 'hop' where Python has 'dil'"),
    ("missing", "only C has field 'g_weight16'"),
])
def test_a_changed_mirror_is_found(built, kind, message):
    mirrors = {"hg_conv": _changed(kind), "hg_layout": fast_native._Layout}
    found = fast_native.layout_mismatch(built.lib, mirrors)
    assert found == f"fast_native._Conv does not match hg_conv of native/hg_fast.h: {message}"


def test_a_changed_mirror_refuses_the_kernel_and_falls_back(built, monkeypatch):
    """Built and cached first (`built`), so only the load and its check run again."""
    monkeypatch.setattr(fast_native, "_Conv", _changed("type"))
    monkeypatch.setattr(fast_native, "_kernels", {})
    assert not fast_native.available()
    assert "hg_conv" in fast_native.failure() and "'dil'" in fast_native.failure()
    generator = _generator("v3", 32)
    fast = FFTGenerator(generator)  # the PyTorch implementation instead, same audio
    assert not fast.native
    _assert_matches_eager(generator, fast, [(2, 6)])
    with pytest.raises(ConfigError, match="not available: fast_native._Conv does not match hg_conv"):
        FFTGenerator(generator, native=True)


def test_a_build_without_vector_code_is_refused(built, tmp_path, monkeypatch):
    """Flags that enable none of AVX-512, AVX2 + FMA or NEON give a library that loads, says why, and is not used."""
    monkeypatch.setenv("HIFIGAN_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(fast_native.TARGETS, "plain", ("-march=native", "-U__AVX512F__", "-U__AVX2__", "-U__ARM_NEON"))
    assert fast_native.kernel("plain") is None
    assert "no vector code" in fast_native.failure("plain")
    with pytest.raises(ConfigError, match="no vector code"):
        FFTGenerator(_generator("v3", 32), native="plain")
