"""Griffin-Lim baseline, `evaluate` and `hifigan evaluate` on real clips with an untrained tiny generator."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from hifigan import Generator, save_generator
from hifigan.audio import MelSpectrogram, load_audio, save_audio
from hifigan.cli.main import main
from hifigan.errors import ConfigError
from hifigan.evaluation import EvaluationSettings, GriffinLimSettings, evaluate, griffin_lim, summarize
from hifigan.evaluation.evaluate import METRIC_KEYS
from hifigan.inference import Vocoder

CLIPS = ["wavs/conf-lockednow.flac", "wavs/confbridge-has-left.flac"]  # 1.8 s and 1.7 s
BETTER_IS_LOWER = ("mel_l1", "mr_stft", "mcd")
BETTER_IS_HIGHER = ("pesq", "stoi", "vuv_f1")


@pytest.fixture
def checkpoint(tmp_path, tiny_config):
    torch.manual_seed(0)
    generator = Generator(tiny_config.generator)
    return save_generator(tmp_path / "tiny.pt", generator.state_dict(), tiny_config)


def test_griffin_lim_is_aligned_with_the_original(allison_dir, tiny_config):
    audio = tiny_config.audio
    samples = load_audio(allison_dir / CLIPS[0], audio.sampling_rate).samples
    mel = MelSpectrogram.from_config(audio)(torch.from_numpy(samples))[0]
    frames = mel.shape[-1]
    reconstruction = griffin_lim(mel, audio, GriffinLimSettings(iterations=16))
    assert reconstruction.shape == (frames * audio.hop_length,)
    assert reconstruction.dtype == np.float32

    def mel_error(shift: int) -> float:
        shifted = np.roll(reconstruction, shift)
        rebuilt = MelSpectrogram.from_config(audio)(torch.from_numpy(shifted))[0]
        return float((rebuilt - mel).abs()[:, 4:-4].mean())

    # phase is lost but the magnitude comes back in place: a half-hop shift is clearly worse
    assert mel_error(0) < 0.3
    assert mel_error(0) < mel_error(audio.hop_length // 2) - 0.05


def test_confidence_interval_uses_the_t_distribution():
    summary = summarize([1.0, 2.0, 3.0])
    assert summary.mean == pytest.approx(2.0)
    assert summary.ci95 == pytest.approx(4.302653 * 1.0 / np.sqrt(3), rel=1e-5)  # t(0.975, 2) * s / sqrt(n)
    assert summarize([5.0]).ci95 is None and summarize([]).mean is None


def test_evaluate_scores_skips_and_writes_outputs(tmp_path, allison_dir, checkpoint):
    short = save_audio(tmp_path / "short.wav", load_audio(allison_dir / CLIPS[0]).samples[:100], 16000)
    paths = [allison_dir / CLIPS[0], short, allison_dir / CLIPS[1]]
    vocoder = Vocoder.from_checkpoint(checkpoint, device="cpu")
    out = tmp_path / "eval"
    report = evaluate(vocoder, paths, out_dir=out, progress=False,
                      settings=EvaluationSettings(jobs=1, plots=2, save_audio=True))

    assert [c.name for c in report.clips] == ["conf-lockednow", "short", "confbridge-has-left"]
    short_clip = report.clips[1]
    for system in ("hifigan", "griffin-lim"):
        assert not short_clip.systems[system].values
        assert set(short_clip.systems[system].skipped) == set(METRIC_KEYS)
        assert "too short" in short_clip.systems[system].skipped["pesq"]

    summary = report.summary()
    for key in BETTER_IS_LOWER:
        assert summary["griffin-lim"][key].mean < summary["hifigan"][key].mean, key
    for key in BETTER_IS_HIGHER:
        assert summary["griffin-lim"][key].mean > summary["hifigan"][key].mean, key
    assert summary["griffin-lim"]["pesq"].n == 2 and summary["griffin-lim"]["pesq"].skipped == 1

    data = json.loads((out / "metrics.json").read_text())
    assert data["settings"]["griffin_lim"]["iterations"] == 32
    assert "no DTW" in data["settings"]["metrics"]["mcd"]
    assert any(s["file"] == "short" and s["metric"] == "stoi" for s in data["settings"]["skipped"])
    assert data["summary"]["hifigan"]["stoi"]["n"] == 2
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == 6 and rows[0]["system"] == "hifigan" and float(rows[0]["mel_l1"]) > 0
    assert rows[2]["pesq"] == "" and "too short" in rows[2]["skipped"]

    pngs = sorted(p.name for p in (out / "plots").glob("*.png"))
    assert pngs == ["conf-lockednow.png", "confbridge-has-left.png"]  # the first two clips scored
    assert (out / "plots" / "conf-lockednow.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "plots" / "conf-lockednow.png").stat().st_size > 10_000
    assert (out / "audio" / "confbridge-has-left.griffin-lim.wav").stat().st_size > 1000

    table = report.format_table()
    assert "mean +- 95% CI" in table and "skipped:" in table and "short [hifigan] pesq" in table


def test_cli_evaluate_with_worker_processes(tmp_path, allison_dir, checkpoint, capsys):
    out = tmp_path / "cli"
    code = main(["evaluate", "--checkpoint", str(checkpoint), *(str(allison_dir / c) for c in CLIPS),
                 "--out", str(out), "--jobs", "2", "--plots", "1", "--gl-iters", "8"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "Griffin-Lim from the same mel" in printed and "mean +- 95% CI" in printed
    data = json.loads((out / "metrics.json").read_text())
    assert data["settings"]["griffin_lim"]["iterations"] == 8
    assert [f["name"] for f in data["files"]] == ["conf-lockednow", "confbridge-has-left"]
    gl, generated = data["summary"]["griffin-lim"], data["summary"]["hifigan"]
    assert gl["mel_l1"]["mean"] < generated["mel_l1"]["mean"] and gl["pesq"]["mean"] > generated["pesq"]["mean"]
    assert len(list((out / "plots").glob("*.png"))) == 1


def test_cli_reads_lists_and_names_bad_input(tmp_path, allison_dir, checkpoint, capsys, monkeypatch):
    missing = tmp_path / "nope.flac"
    assert main(["evaluate", "--checkpoint", str(checkpoint), str(missing), "--out", str(tmp_path)]) == 2
    assert f"{missing}: file not found" in capsys.readouterr().err
    listing = tmp_path / "list.txt"
    listing.write_text("gone.flac\n")
    assert main(["evaluate", "--checkpoint", str(checkpoint), str(listing), "--out", str(tmp_path)]) == 2
    assert "gone.flac: file not found" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(checkpoint), str(allison_dir / CLIPS[0]),
                 "--gl-iters", "0"]) == 2

    # --model goes through Vocoder.from_pretrained
    asked = {}

    def fake_pretrained(name, **kwargs):
        asked["name"] = name
        raise ConfigError(f"unknown model {name!r}")

    monkeypatch.setattr(Vocoder, "from_pretrained", staticmethod(fake_pretrained))
    assert main(["evaluate", "--model", "no-such-model", str(allison_dir / CLIPS[0])]) == 2
    assert asked["name"] == "no-such-model"
    assert "unknown model 'no-such-model'" in capsys.readouterr().err
