"""The one folder expander (audio/io.py `expand_paths`), used by synthesize, bench --quality and corpora."""
from __future__ import annotations

from pathlib import Path

import pytest

from hifigan.audio import AUDIO_SUFFIXES, expand_paths, find_audio_files
from hifigan.errors import DataError
from hifigan.inference.inputs import collect_inputs


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture
def tree(tmp_path):
    for name in ("b.wav", "a.FLAC", "sub/c.ogg", "sub/deeper/d.wav", "notes.txt", "sub/e.npy",
                 ".hidden/f.wav", "sub/._g.wav"):
        touch(tmp_path / "corpus" / name)
    (tmp_path / "corpus" / "folder.wav").mkdir()  # a folder named like audio is not a file
    return tmp_path / "corpus"


def test_folders_are_searched_recursively_in_sorted_order(tree):
    found = expand_paths([tree], AUDIO_SUFFIXES)
    assert [p.relative_to(tree).as_posix() for p in found] == ["a.FLAC", "b.wav", "sub/c.ogg", "sub/deeper/d.wav"]
    assert find_audio_files(tree) == found  # the corpus readers walk folders the same way


def test_files_are_kept_in_the_given_order_with_folders_expanded_in_place(tree):
    found = expand_paths([tree / "sub" / "deeper" / "d.wav", tree / "sub"], AUDIO_SUFFIXES)
    assert [p.name for p in found] == ["d.wav", "c.ogg", "d.wav"]
    assert expand_paths([str(tree / "b.wav")], AUDIO_SUFFIXES) == [tree / "b.wav"]


@pytest.mark.parametrize("target, message", [
    ("missing", "does not exist (no such file or folder)"),
    ("empty", "holds no audio (.wav, .flac, .ogg) files"),
    ("notes.txt", "unknown input type .txt; expected an audio (.wav, .flac, .ogg) file, or a folder"),
])
def test_clear_errors_naming_the_path(tree, target, message):
    (tree / "empty" / "inner").mkdir(parents=True)
    touch(tree / "empty" / "inner" / "readme.md")
    with pytest.raises(DataError) as caught:
        expand_paths([tree / target], AUDIO_SUFFIXES)
    assert str(tree / target) in str(caught.value) and message in str(caught.value)


def test_the_kind_names_the_files_sought(tree):
    with pytest.raises(DataError, match=r"holds no mel \(.npy\) files"):
        expand_paths([tree / "sub" / "deeper"], (".npy",), kind="mel")
    with pytest.raises(DataError, match=r"unknown input type \(no suffix\)"):
        expand_paths([touch(tree / "README")], AUDIO_SUFFIXES)


def test_collect_inputs_keeps_sub_paths_and_refuses_duplicate_names(tree):
    items = collect_inputs([tree])
    assert [(i.name, i.kind) for i in items] == [
        ("a", "audio"), ("b", "audio"), ("sub/c", "audio"), ("sub/deeper/d", "audio"), ("sub/e", "mel"),
    ]
    assert [i.name for i in collect_inputs([tree / "b.wav", tree / "sub" / "e.npy"])] == ["b", "e"]
    with pytest.raises(DataError, match="would both be written as d.wav"):
        collect_inputs([tree / "sub" / "deeper" / "d.wav", tree / "sub" / "deeper"])


def test_bench_quality_expands_with_the_same_function(tree):
    from hifigan.cli.bench_synth import _expand

    assert _expand([str(tree)]) == expand_paths([tree], AUDIO_SUFFIXES)
    with pytest.raises(DataError, match=r"--quality: .*missing.wav: does not exist"):
        _expand([str(tree / "missing.wav")])
    with pytest.raises(DataError, match="--quality: .*holds no audio"):
        _expand([str(touch(tree / "x" / "y.txt").parent)])
