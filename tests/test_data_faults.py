"""Corpus faults `hifigan prepare` and the list readers must survive: nothing lost, nothing garbled.

Odd file names (bytes that are not UTF-8), an --out that cannot be written,
audio whose mono mix or level is off, list IDs that leave the corpus, and
transcripts with stray bytes.
"""
from __future__ import annotations

import errno
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from hifigan.audio.io import AudioWarning, load_audio
from hifigan.cli.main import main
from hifigan.data import load_splits, read_corpus, read_file_list, write_file_list
from hifigan.data.lists import ListLineWarning, MissingFilesWarning
from hifigan.data.prepare import inspect_corpus, prepare_corpus
from hifigan.errors import DataError
from test_data_helpers import make_lj, tone, write

RATE = 22050


def odd_name(folder: Path, name: bytes) -> Path:
    """`folder/name` for a name that is not UTF-8, as Python spells it (os.fsdecode)."""
    return Path(os.fsdecode(os.fsencode(folder) + b"/" + name))


def write_odd(folder: Path, name: bytes, data: np.ndarray) -> Path:
    """soundfile cannot open such a name itself: write a plain one, then rename it."""
    plain = write(folder / "plain-name-for-now.wav", data, RATE)
    target = odd_name(folder, name)
    os.rename(plain, target)
    return target


# ---- 1. file names that are not UTF-8 ------------------------------------------------

def test_non_utf8_names_are_read_listed_and_read_back(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    for i in range(3):
        write(corpus / f"g{i}.wav", tone(0.5, RATE, seed=i), RATE)
    odd = write_odd(corpus, b"caf\xe9-\xff.wav", tone(0.5, RATE, seed=7))
    broken = odd_name(corpus, b"notes\xfe.wav")
    with open(os.fsencode(broken), "wb") as handle:
        handle.write(b"not audio at all\n" * 20)
    assert load_audio(odd).samples.shape == (RATE // 2,)
    out = tmp_path / "out"
    code = main(["prepare", str(corpus), "--out", str(out), "--no-progress", "--validation-size", "1"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "5 audio files: 4 usable, 1 unusable" in printed
    assert "notes\\xfe.wav" in printed and "not audio (format not recognised)" in printed
    splits = load_splits(out)
    assert odd in splits.train + splits.val and len(splits.train + splits.val) == 4
    written = (out / "train.txt").read_bytes() + (out / "val.txt").read_bytes()
    assert b"caf\xe9-\xff.wav\n" in written  # the file's own bytes: the line names it exactly
    unusable = (out / "unusable.txt").read_bytes()
    assert unusable.startswith(os.fsencode(broken) + b"|not audio")


def test_odd_names_resample_and_lists_keep_the_usual_mode(tmp_path):
    corpus = tmp_path / "corpus"
    write(corpus / "g0.wav", tone(0.5, 16000), 16000)
    write_odd(corpus, b"\xff.wav", tone(0.5, RATE, seed=3))
    out = tmp_path / "out"
    result = prepare_corpus(corpus, out=out, resample_to=16000, validation_size=1, progress=False)
    assert result.resampled == 2
    copy = odd_name(out / "wavs", b"\xff.wav")
    assert copy in result.splits.train + result.splits.val
    assert load_audio(copy).sampling_rate == 16000
    assert sorted(load_splits(out).train + load_splits(out).val) == sorted(result.splits.train + result.splits.val)
    umask = os.umask(0)
    os.umask(umask)
    assert (out / "train.txt").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_written_list_with_odd_names_round_trips(tmp_path):
    files = [write_odd(tmp_path / "wavs", b"\xff\xfe%d.wav" % i, tone(0.2, RATE, seed=i)) for i in range(2)]
    listing = write_file_list(tmp_path / "train.txt", files)
    found, missing = read_file_list(listing)
    assert found == files and missing == []


# ---- 2. an --out that cannot take the lists --------------------------------------------

def small_corpus(folder: Path) -> Path:
    for i in range(3):
        write(folder / f"g{i}.wav", tone(0.5, RATE, seed=i), RATE)
    return folder


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("hifigan prepare: error: ") and err.count("\n") == 1, err
    return err


def test_out_that_is_a_file_or_under_a_file(tmp_path, capsys):
    corpus = small_corpus(tmp_path / "corpus")
    taken = tmp_path / "taken.txt"
    taken.write_text("my notes\n")
    assert main(["prepare", str(corpus), "--out", str(taken), "--no-progress"]) == 2
    err = one_line_error(capsys)
    assert str(taken) in err and "is a file" in err
    assert taken.read_text() == "my notes\n"
    assert main(["prepare", str(corpus), "--out", str(taken / "sub"), "--no-progress"]) == 2
    err = one_line_error(capsys)
    assert str(taken / "sub") in err and "cannot create" in err
    assert taken.read_text() == "my notes\n"


def test_read_only_out_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    corpus = small_corpus(tmp_path / "corpus")
    out = tmp_path / "ro"
    out.mkdir()
    (out / "train.txt").write_text("old\n")

    def refuse(*args, **kwargs):  # what a read-only folder answers (root ignores chmod)
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    assert main(["prepare", str(corpus), "--out", str(out), "--no-progress"]) == 2
    err = one_line_error(capsys)
    assert str(out) in err and "Permission denied" in err
    assert sorted(p.name for p in out.iterdir()) == ["train.txt"]
    assert (out / "train.txt").read_text() == "old\n"


def test_a_failed_write_leaves_the_old_lists(tmp_path, monkeypatch):
    corpus = small_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.txt").write_text("old train\n")
    (out / "val.txt").write_text("old val\n")
    real_fsync = os.fsync
    calls = []

    def disk_full_on_the_second_file(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", disk_full_on_the_second_file)
    with pytest.raises(DataError, match="No space left on device"):
        prepare_corpus(corpus, out=out, validation_size=1, progress=False)
    monkeypatch.undo()
    assert (out / "train.txt").read_text() == "old train\n"
    assert (out / "val.txt").read_text() == "old val\n"
    assert sorted(p.name for p in out.iterdir()) == ["train.txt", "val.txt"]  # no temporary left


def test_resampling_never_writes_over_the_originals(tmp_path):
    lj = make_lj(tmp_path / "LJ", count=4)
    before = (lj / "wavs" / "LJ001-0000.wav").read_bytes()
    with pytest.raises(DataError, match="over the originals"):
        prepare_corpus(lj, out=lj, resample_to=16000, validation_size=1, progress=False)
    assert (lj / "wavs" / "LJ001-0000.wav").read_bytes() == before
    assert not (lj / "train.txt").exists()


# ---- 3. a mono mix that loses the signal, float audio beyond full scale ----------------

def test_anti_phase_and_hot_float_audio_warn(tmp_path):
    corpus = tmp_path / "corpus"
    base = tone(0.5, RATE)
    anti = write(corpus / "anti.wav", np.stack([base, -base], axis=1), RATE)
    hot = write(corpus / "hot.wav", base / np.abs(base).max() * 3.0, RATE, subtype="FLOAT")
    fine = write(corpus / "fine.wav", tone(0.5, RATE, channels=2), RATE)
    with pytest.warns(AudioWarning, match=r"anti\.wav: .*mono"):
        load_audio(anti)
    with pytest.warns(AudioWarning, match=r"hot\.wav: .*peak 3\.00"):
        loaded = load_audio(hot)
    assert np.abs(loaded.samples).max() == pytest.approx(3.0)  # warned, not changed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_audio(fine).warnings == ()
        report = inspect_corpus(corpus, workers=2, progress=False)  # reported, not warned per thread
    warned = {f.path.name: f.warnings for f in report.files if f.warnings}
    assert sorted(warned) == ["anti.wav", "hot.wav"] and len(report.usable) == 3
    text = report.summary()
    assert "Warnings (2):" in text
    assert any("anti.wav" in line and "mono" in line for line in text.splitlines())
    assert any("hot.wav" in line and "peak 3.00" in line for line in text.splitlines())


# ---- 4. list IDs that leave the corpus --------------------------------------------------

def test_ids_that_leave_the_corpus_are_refused_per_line(tmp_path):
    lj = make_lj(tmp_path / "LJ", count=4)
    secret = write(tmp_path / "outside" / "secret.wav", tone(0.2, RATE), RATE)
    metadata = lj / "metadata.csv"
    metadata.write_text(
        metadata.read_text() + "../../outside/secret|stolen|stolen\n"
        f"{secret.with_suffix('')}|absolute|absolute\n"
    )
    with pytest.warns(ListLineWarning, match=r"metadata\.csv: 2 lines left out: line 5: ID '\.\./\.\./outside"):
        corpus = read_corpus(lj)
    assert sorted(p.name for p in corpus.files) == [f"LJ001-{i:04d}.wav" for i in range(4)]
    assert secret not in corpus.files and not corpus.missing
    assert [r.split(": ", 1)[1][:7] for r in corpus.rejected] == ["line 5:", "line 6:"]
    assert all("outside the corpus" in r for r in corpus.rejected)
    with pytest.warns(ListLineWarning):
        text = inspect_corpus(lj, workers=1, progress=False).summary()
    assert "List lines left out (2):" in text and "line 5: ID '../../outside/secret'" in text


# ---- 5. stray bytes in a transcript -----------------------------------------------------

def test_bad_bytes_in_transcripts_cost_no_lines(tmp_path):
    lj = make_lj(tmp_path / "LJ", count=5)
    metadata = lj / "metadata.csv"
    lines = metadata.read_bytes().splitlines()
    lines[1] = b"LJ001-0001|caf\xe9 au lait|caf\xe9 au lait"
    lines[3] = b"LJ001-0003|na\xefve|naive"
    lines[4] = b"LJ\xff01-0004|a bad ID|a bad ID"
    metadata.write_bytes(b"\n".join(lines) + b"\n")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        corpus = read_corpus(lj)
    texts = [str(w.message) for w in record if w.category is ListLineWarning]
    assert len(texts) == 1 and "metadata.csv: 2 lines have text that is not UTF-8" in texts[0]  # once
    missing = [str(w.message) for w in record if w.category is MissingFilesWarning]
    assert len(missing) == 1 and "LJ\\xff01-0004.wav" in missing[0]  # the bad ID: its own line only
    assert sorted(p.name for p in corpus.files) == [f"LJ001-{i:04d}.wav" for i in range(4)]
    assert len(corpus.missing) == 1


def test_binary_list_is_still_refused(tmp_path):
    (tmp_path / "list.txt").write_bytes(b"\x00\x01binary\xff\n")
    with pytest.raises(DataError, match="not a text file list"):
        read_file_list(tmp_path / "list.txt")


def test_names_a_list_line_cannot_hold(tmp_path):
    corpus = tmp_path / "corpus"
    for i in range(2):
        write(corpus / f"g{i}.wav", tone(0.5, RATE, seed=i), RATE)
    write(corpus / "a|b.wav", tone(0.5, RATE, seed=5), RATE)
    write(corpus / "#take.wav", tone(0.5, RATE, seed=6), RATE)
    result = prepare_corpus(corpus, out=corpus, validation_size=1, progress=False)
    problems = {f.path.name: f.problem for f in result.report.unusable}
    assert list(problems) == ["a|b.wav"] and "'|'" in problems["a|b.wav"]
    splits = load_splits(corpus)
    assert sorted(p.name for p in splits.train + splits.val) == ["#take.wav", "g0.wav", "g1.wav"]
    with pytest.raises(DataError, match=r"a\|b\.wav: its name holds '\|'"):
        write_file_list(tmp_path / "list.txt", [corpus / "a|b.wav"])


def test_download_into_a_file_is_one_line(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("mine\n")
    assert main(["prepare", "ljspeech", "--download", str(taken / "datasets"), "--no-progress"]) == 2
    err = one_line_error(capsys)
    assert str(taken / "datasets") in err and "cannot create the folder" in err
    assert taken.read_text() == "mine\n"
