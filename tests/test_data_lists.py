"""Corpus layouts and splits: every layout `load_splits` accepts, and its errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from hifigan.data import load_splits, read_file_list, seeded_split, write_file_list
from hifigan.data.lists import MissingFilesWarning, validation_count
from hifigan.errors import DataError
from test_data_helpers import make_lj, tone, write

RATE = 22050


def names(paths) -> list[str]:
    return [p.name for p in paths]


def test_allison_corpus_keeps_its_own_split(allison_dir):
    splits = load_splits(allison_dir)
    assert (len(splits.train), len(splits.val)) == (543, 25)
    assert all(p.is_absolute() and p.is_file() for p in splits.train + splits.val)
    assert not set(splits.train) & set(splits.val)
    assert "train.txt + val.txt" in splits.source


def test_ljspeech_folder_gets_a_seeded_split(tmp_path):
    lj = make_lj(tmp_path / "LJSpeech-1.1", count=40)
    a = load_splits(lj)
    b = load_splits(lj)
    c = load_splits(lj, seed=7)
    assert len(a.val) == 2 and len(a.train) == 38  # 5% of 40
    assert a.train == b.train and a.val == b.val
    assert set(c.val) != set(a.val)
    assert sorted(names(a.train + a.val)) == [f"LJ001-{i:04d}.wav" for i in range(40)]
    assert load_splits(lj, validation_size=10).val.__len__() == 10
    assert len(load_splits(lj, validation_size=0.25).val) == 10


def test_ljspeech_folder_uses_the_authors_lists(tmp_path):
    lj = make_lj(tmp_path / "LJSpeech-1.1")
    (lj / "training.txt").write_text("LJ001-0000|a|a\nLJ001-0001|b|b\nLJ001-0002|c|c\n")
    (lj / "validation.txt").write_text("LJ001-0003|d|d\n")
    splits = load_splits(lj)
    assert names(splits.train) == ["LJ001-0000.wav", "LJ001-0001.wav", "LJ001-0002.wav"]
    assert names(splits.val) == ["LJ001-0003.wav"]
    assert "authors'" in splits.source


def test_ljspeech_folder_uses_nvidia_lists(tmp_path):
    lj = make_lj(tmp_path / "LJSpeech-1.1")
    (lj / "filelists").mkdir()
    (lj / "filelists" / "ljs_audio_train.txt").write_text("wavs/LJ001-0004.wav\nwavs/LJ001-0005.wav|text\n")
    (lj / "filelists" / "ljs_audio_val.txt").write_text("wavs/LJ001-0006.wav\n")
    splits = load_splits(lj)
    assert names(splits.train) == ["LJ001-0004.wav", "LJ001-0005.wav"]
    assert names(splits.val) == ["LJ001-0006.wav"]


def test_authors_list_file_resolves_ids_against_wavs(tmp_path):
    make_lj(tmp_path)
    listing = tmp_path / "my_training.txt"
    listing.write_text("LJ001-0001|some text\n\n# a comment\nLJ001-0002|more text|more\n")
    files, missing = read_file_list(listing)
    assert names(files) == ["LJ001-0001.wav", "LJ001-0002.wav"] and not missing
    # explicit audio folder, and flac found by ID too
    write(tmp_path / "other" / "X1.flac", tone(0.2, RATE), RATE)
    (tmp_path / "x.txt").write_text("X1|hello\n")
    files, _ = read_file_list(tmp_path / "x.txt", audio_dir=tmp_path / "other")
    assert names(files) == ["X1.flac"]


def test_plain_list_is_relative_to_its_folder(tmp_path):
    write(tmp_path / "corpus" / "a" / "one.flac", tone(0.2, RATE), RATE)
    write(tmp_path / "corpus" / "b" / "two.ogg", tone(0.2, RATE), RATE, format="OGG", subtype="VORBIS")
    absolute = write(tmp_path / "elsewhere" / "three.wav", tone(0.2, RATE), RATE)
    listing = tmp_path / "corpus" / "all.txt"
    listing.write_text(f"a/one.flac\nb/two.ogg\n{absolute}\n")
    splits = load_splits(listing, validation_size=1)
    assert sorted(names(splits.train + splits.val)) == ["one.flac", "three.wav", "two.ogg"]
    assert len(splits.val) == 1


def test_audio_folder_is_searched_recursively(tmp_path):
    for i, sub in enumerate(["", "x", "x/y", "z"]):
        write(tmp_path / sub / f"f{i}.wav", tone(0.2, RATE, seed=i), RATE)
    (tmp_path / "x" / "readme.txt").write_text("not audio, not listed")
    splits = load_splits(tmp_path, validation_size=1)
    assert sorted(names(splits.train + splits.val)) == ["f0.wav", "f1.wav", "f2.wav", "f3.wav"]


def test_val_override_is_left_out_of_training(tmp_path):
    for i in range(5):
        write(tmp_path / "wavs" / f"f{i}.wav", tone(0.2, RATE, seed=i), RATE)
    (tmp_path / "myval.txt").write_text("wavs/f1.wav\nwavs/f3.wav\n")
    splits = load_splits(tmp_path / "wavs", val=tmp_path / "myval.txt")
    assert names(splits.val) == ["f1.wav", "f3.wav"]
    assert names(splits.train) == ["f0.wav", "f2.wav", "f4.wav"]


def test_written_lists_read_back(tmp_path):
    inside = [write(tmp_path / "out" / "wavs" / f"{n}.wav", tone(0.2, RATE), RATE) for n in "ab"]
    outside = [write(tmp_path / "src" / f"{n}.wav", tone(0.2, RATE), RATE) for n in "cd"]
    write_file_list(tmp_path / "out" / "train.txt", inside + outside[:1])
    write_file_list(tmp_path / "out" / "val.txt", outside[1:])
    text = (tmp_path / "out" / "train.txt").read_text().splitlines()
    assert text[:2] == ["wavs/a.wav", "wavs/b.wav"] and Path(text[2]).is_absolute()
    splits = load_splits(tmp_path / "out")
    assert splits.train == inside + outside[:1] and splits.val == outside[1:]


def test_missing_entries_warn_and_are_left_out(tmp_path):
    write(tmp_path / "a.wav", tone(0.2, RATE), RATE)
    (tmp_path / "list.txt").write_text("a.wav\ngone.wav\n")
    with pytest.warns(MissingFilesWarning, match="gone.wav"):
        splits = load_splits(tmp_path / "list.txt", validation_size=0)
    assert names(splits.train) == ["a.wav"] and splits.val == []
    assert names(splits.missing) == ["gone.wav"]


@pytest.mark.parametrize(
    "setup, match",
    [
        (lambda d: None, "no audio files found"),
        (lambda d: (d / "list.txt").write_text("nothere.wav\n"), "none of its 1 entries"),
        (lambda d: (d / "list.txt").write_text("\n# only a comment\n"), "empty"),
        (lambda d: (d / "list.txt").write_bytes(b"\xff\xfe\x00bin"), "not a text file list"),
    ],
)
def test_layout_errors_name_the_problem(tmp_path, setup, match):
    setup(tmp_path)
    target = tmp_path / "list.txt" if (tmp_path / "list.txt").exists() else tmp_path
    with pytest.raises(DataError, match=match):
        load_splits(target)


def test_missing_data_and_single_audio_file(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_splits(tmp_path / "nope")
    one = write(tmp_path / "one.wav", tone(0.2, RATE), RATE)
    with pytest.raises(DataError, match="one audio file"):
        load_splits(one)


def test_validation_sizes():
    assert validation_count(13100, None) == 150  # the authors' LJ Speech size
    assert validation_count(568, None) == 28
    assert validation_count(3, None) == 1
    assert validation_count(1, None) == 0
    assert validation_count(100, 0.1) == 10
    assert validation_count(100, 7) == 7
    with pytest.raises(DataError, match="leaves no training"):
        validation_count(5, 5)
    with pytest.raises(DataError):
        validation_count(5, 1.5)
    train, val = seeded_split([Path(f"/x/{i}.wav") for i in range(20)], 4, seed=1)
    assert len(val) == 4 and len(train) == 16 and train == sorted(train)
