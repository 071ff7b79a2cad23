"""`hifigan prepare`: the corpus check, the lists it writes, resampling, and LJ Speech unpacking."""
from __future__ import annotations

import hashlib
import io
import tarfile

import pytest
import soundfile as sf

from hifigan.cli.main import main
from hifigan.data import load_splits
from hifigan.data.ljspeech import download_ljspeech
from hifigan.data.prepare import inspect_corpus, prepare_corpus
from hifigan.errors import DataError
from test_data_helpers import make_bad_files, make_lj, tone, write

RATE = 22050


def test_zoo_of_bad_files_is_reported_with_reasons(tmp_path):
    corpus = tmp_path / "corpus"
    make_bad_files(corpus / "bad")
    for i in range(6):
        write(corpus / "good" / f"g{i}.wav", tone(1.0, RATE, seed=i), RATE)
    write(corpus / "good" / "loud.wav", tone(1.0, RATE) * 3.0, RATE)  # clipped on writing
    report = inspect_corpus(corpus, workers=2, progress=False)
    problems = {f.path.name: f.problem for f in report.unusable}
    assert problems == {
        "empty.wav": "empty file (0 bytes)",
        "truncated.wav": problems["truncated.wav"],  # libsndfile's own words, checked below
        "notes.wav": "not audio (format not recognised)",
        "nan.wav": "NaN or infinite samples",
        "one_sample.wav": problems["one_sample.wav"],
    }
    assert problems["truncated.wav"].startswith("unreadable (")
    assert problems["one_sample.wav"].startswith("too short: 1 sample")
    assert problems["truncated.wav"].startswith("unreadable (")
    assert problems["one_sample.wav"].startswith("too short: 1 sample at 22050 Hz")
    assert [f.path.name for f in report.silent] == ["silent.wav"]
    assert [f.path.name for f in report.clipping] == ["loud.wav"]
    text = report.summary()
    assert "13 audio files: 8 usable, 5 unusable" in text
    assert "Unusable files (5), left out of the lists:" in text
    assert "bad/notes.wav" in text and "not audio (format not recognised)" in text
    assert "silent         1 with peak below -60 dBFS" in text
    out = tmp_path / "out"
    result = prepare_corpus(corpus, out=out, validation_size=2, progress=False)
    splits = load_splits(out)
    assert len(splits.train) == 6 and len(splits.val) == 2
    assert {p.name for p in splits.train + splits.val} == {f"g{i}.wav" for i in range(6)} | {"loud.wav", "silent.wav"}
    assert (out / "unusable.txt").read_text().count("\n") == 5
    assert result.splits.train == splits.train


def test_prepare_allison_keeps_its_split_and_reads_back(allison_dir, tmp_path, capsys):
    out = tmp_path / "allison-prep"
    assert main(["prepare", str(allison_dir), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "568 audio files: 568 usable, 0 unusable" in printed
    assert "16000 Hz: 568 (resampled to 22050 Hz on load)" in printed
    assert "FLAC PCM_16: 568" in printed
    assert "10 with peak below -60 dBFS" in printed  # the corpus's room-silence recordings
    assert "Split: 543 training and 25 validation files (train.txt + val.txt)" in printed
    splits = load_splits(out)
    assert splits.train == load_splits(allison_dir).train and len(splits.val) == 25


def test_resampled_copies_and_a_seeded_split(tmp_path, capsys):
    corpus = tmp_path / "c"
    for i in range(5):
        write(corpus / "spk1" / f"a{i}.flac", tone(0.5, 16000, seed=i), 16000, format="FLAC")
    write(corpus / "spk2" / "b.wav", tone(0.5, 44100, channels=2), 44100)
    out = tmp_path / "out"
    code = main(["prepare", str(corpus), "--out", str(out), "--resample-to", "--validation-size", "2",
                 "--seed", "3", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Resampled 6 files to 22050 Hz" in printed
    splits = load_splits(out)
    assert len(splits.train) == 4 and len(splits.val) == 2
    for path in splits.train + splits.val:
        assert path.is_relative_to(out / "wavs") and path.suffix == ".wav"
        info = sf.info(str(path))
        assert (info.samplerate, info.channels) == (22050, 1)
    assert (out / "wavs" / "spk2" / "b.wav").exists()
    assert (out / "train.txt").read_text().startswith("wavs/")
    again = prepare_corpus(corpus, out=tmp_path / "out2", validation_size=2, seed=3, progress=False)
    assert [p.stem for p in again.splits.val] == [p.stem for p in splits.val]  # same seed, same split


def test_cli_errors(tmp_path, capsys):
    assert main(["prepare", str(tmp_path / "missing")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    bad = make_bad_files(tmp_path / "bad")
    bad["silent"].unlink()
    bad["nan"].unlink()
    assert main(["prepare", str(tmp_path / "bad"), "--no-progress"]) == 2
    assert "no usable audio files" in capsys.readouterr().err
    write(tmp_path / "bad" / "ok.wav", tone(0.5, RATE), RATE)
    assert main(["prepare", str(tmp_path / "bad"), "--no-progress", "--strict"]) == 1
    assert main(["prepare", "ljspeech"]) == 2
    assert "--download DIR" in capsys.readouterr().err


def make_lj_archive(tmp_path, count=8, extra=None):
    """A small LJSpeech-1.1.tar.bz2 shaped like the official one."""
    src = make_lj(tmp_path / "src" / "LJSpeech-1.1", count=count, seconds=0.3)
    (src / "README").write_text("LJ Speech stand-in\n")
    archive = tmp_path / "LJSpeech-1.1.tar.bz2"
    with tarfile.open(archive, "w:bz2") as tar:
        tar.add(src, arcname="LJSpeech-1.1")
        if extra:
            extra(tar)
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def test_ljspeech_download_unpack_and_split(tmp_path, monkeypatch, capsys):
    archive, digest = make_lj_archive(tmp_path)
    monkeypatch.setattr("hifigan.data.ljspeech.LJSPEECH_URL", archive.as_uri())
    monkeypatch.setattr("hifigan.data.ljspeech.LJSPEECH_SHA256", digest)
    dest = tmp_path / "datasets"
    assert main(["prepare", "ljspeech", "--download", str(dest), "--no-progress",
                 "--validation-size", "2"]) == 0
    lj = dest / "LJSpeech-1.1"
    assert (lj / "metadata.csv").exists() and len(list((lj / "wavs").glob("*.wav"))) == 8
    assert not (dest / "LJSpeech-1.1.tar.bz2").exists()  # the archive is removed after unpacking
    printed = capsys.readouterr().out
    assert "LJ Speech is in" in printed and "6 training and 2 validation files" in printed
    splits = load_splits(lj)  # the lists written into the LJ folder
    assert len(splits.train) == 6 and len(splits.val) == 2
    assert (lj / "train.txt").read_text().startswith("wavs/LJ001-")


def test_ljspeech_checksum_and_unsafe_archives(tmp_path):
    archive, digest = make_lj_archive(tmp_path)
    with pytest.raises(DataError, match="SHA-256 is .* expected 0000"):
        download_ljspeech(tmp_path / "d1", url=archive.as_uri(), sha256="0" * 64, progress=False)
    assert (tmp_path / "d1" / "LJSpeech-1.1.tar.bz2.part").exists()

    def escape(tar):
        payload = b"owned"
        info = tarfile.TarInfo("../escaped.txt")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))

    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    evil, evil_digest = make_lj_archive(evil_dir, extra=escape)
    with pytest.raises(DataError, match="outside"):
        download_ljspeech(tmp_path / "d2", url=evil.as_uri(), sha256=evil_digest, progress=False)
    assert not (tmp_path / "escaped.txt").exists()
    with pytest.raises(DataError, match="cannot download"):
        download_ljspeech(tmp_path / "d3", url=(tmp_path / "nothing.tar.bz2").as_uri(), progress=False)
