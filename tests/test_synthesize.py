"""`hifigan synthesize` on mel files, audio files and folders, and every bad-input case."""
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from hifigan import Generator, save_generator
from hifigan.audio import load_audio
from hifigan.cli.main import main
from hifigan.inference import Vocoder
from hifigan.inference.inputs import MelRangeWarning, load_mel_file

from helpers import write_mel



@pytest.fixture(scope="module")
def setup(tmp_path_factory, allison_dir):
    from hifigan.config import preset, with_generator_channels

    config = with_generator_channels(preset("v1"), 16)
    torch.manual_seed(5)
    folder = tmp_path_factory.mktemp("synth")
    checkpoint = save_generator(folder / "tiny.pt", Generator(config.generator).state_dict(), config)
    vocoder = Vocoder.from_checkpoint(checkpoint, device="cpu")
    clips = [allison_dir / n for n in (allison_dir / "val.txt").read_text().split()[:2]]
    mels = [vocoder.mel(load_audio(c).samples, sampling_rate=16000) for c in clips]
    return checkpoint, vocoder, clips, [m.cpu() for m in mels]


def run(checkpoint, *args):
    return main(["synthesize", "--checkpoint", str(checkpoint), "--quiet", *map(str, args)])


def test_mel_files_in_every_accepted_layout(setup, tmp_path, capsys):
    checkpoint, vocoder, _, mels = setup
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    np.save(inputs / "a.npy", mels[0].numpy())                       # [n_mels, T]
    np.save(inputs / "sub" / "b.npy", mels[1].numpy().T)             # [T, n_mels] (NVIDIA's --save-mels)
    torch.save(mels[1][None, :, :30].clone(), inputs / "c.pt")       # [1, n_mels, T]
    torch.save({"mel": mels[0][:, :7].clone()}, inputs / "d.pt")     # dict with "mel"
    out = tmp_path / "out"
    assert run(checkpoint, inputs, "--out", out, "--batch-size", 3) == 0
    summary = capsys.readouterr().out
    assert "wrote 4 files" in summary and "real-time factor" in summary
    expected = {"a": mels[0], "sub/b": mels[1], "c": mels[1][:, :30], "d": mels[0][:, :7]}
    for name, mel in expected.items():
        audio, rate = sf.read(str(out / f"{name}.wav"), dtype="float32")
        assert rate == 22050 and sf.info(str(out / f"{name}.wav")).subtype == "PCM_16"
        reference = vocoder(mel).numpy()
        assert len(audio) == mel.shape[-1] * 256
        assert np.abs(audio - np.clip(reference, -1, 1)).max() < 2 / 32768  # batched == alone, up to PCM


def test_audio_files_copy_synthesis_float_plot_and_denoise(setup, tmp_path, capsys):
    checkpoint, vocoder, clips, _ = setup
    out = tmp_path / "out"
    assert run(checkpoint, clips[0], "--out", out, "--float", "--plot", "--denoise", "0.05") == 0
    assert "denoise 0.05" in capsys.readouterr().out
    wav = out / f"{clips[0].stem}.wav"
    audio, rate = sf.read(str(wav), dtype="float32")
    assert rate == 22050 and sf.info(str(wav)).subtype == "FLOAT"
    expected = vocoder.resynthesize(load_audio(clips[0]).samples, sampling_rate=16000, denoise=0.05)
    np.testing.assert_allclose(audio, expected.numpy(), atol=1e-5)
    png = out / f"{clips[0].stem}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_input_uses_the_bundled_samples(setup, tmp_path, capsys):
    checkpoint = setup[0]
    out = tmp_path / "demo"
    assert run(checkpoint, "--out", out, "--plot") == 0
    captured = capsys.readouterr()
    assert "bundled" in captured.err and "wrote 3 files" in captured.out
    assert len(list(out.glob("*.wav"))) == 3 and len(list(out.glob("*.png"))) == 3




@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bands.npy", np.zeros((60, 20), np.float32) - 5, "no axis of 80 bands"),
        ("nan.npy", np.where(np.eye(80, 20) > 0, np.nan, -5.0).astype(np.float32), "20 NaN or infinite values"),
        ("inf.pt", torch.full((80, 10), -5.0).index_fill_(1, torch.tensor([3]), float("inf")), "80 NaN or infinite"),
        ("decibels.npy", np.linspace(-100, 0, 800, dtype=np.float32).reshape(80, 10), "far outside a natural-log"),
        ("int16.npy", np.linspace(-11, 12, 800, dtype=np.float32).reshape(80, 10), "far outside a natural-log"),
        ("empty.npy", np.zeros((80, 0), np.float32), "no frames"),
        ("cube.npy", np.zeros((2, 80, 10), np.float32), "expected a mel"),
        ("complex.npy", np.zeros((80, 10), np.complex64), "real numbers"),
        # the one mel reader (audio/mel_files.py): random bytes are "not a .npy/.pt file" whatever the
        # suffix, and a dict with exactly one tensor is read as that tensor (as `finetune --mels` did)
        ("broken.npy", b"not an array", "not a .npy/.pt file"),
        ("state.pt", {"generator": torch.zeros(3), "discriminator": torch.zeros(3)},
         "expected a tensor or a dict with a 'mel'"),
        ("one-tensor.pt", {"generator": torch.zeros(3)}, "expected a mel [n_mels, frames], got shape (3,)"),
        ("broken.pt", b"garbage", "not a .npy/.pt file"),
        ("zero-bytes.npy", b"", "empty file"),
    ],
)
def test_bad_mel_files_are_clear_errors_naming_the_file(setup, tmp_path, capsys, name, content, message):
    path = write_mel(tmp_path / name, content)
    assert run(setup[0], path, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert str(path) in err and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())  # nothing synthesized


def test_other_bad_inputs(setup, tmp_path, capsys):
    checkpoint, _, _, mels = setup
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    (tmp_path / "fake.wav").write_bytes(b"RIFF....WAVEfmt nonsense")
    np.save(tmp_path / "x.npy", mels[0].numpy())
    sf.write(str(tmp_path / "x.wav"), np.zeros(4000, np.float32), 16000)
    cases = [
        ([tmp_path / "notes.txt"], "unknown input type .txt"),
        ([tmp_path / "missing.npy"], "no such file or folder"),
        ([tmp_path / "empty"], "holds no mel"),
        ([tmp_path / "fake.wav"], "not readable as audio"),
        ([tmp_path / "x.npy", tmp_path / "x.wav"], "would both be written as x.wav"),
    ]
    for inputs, message in cases:
        assert run(checkpoint, *inputs, "--out", tmp_path / "out") == 2, message
        err = capsys.readouterr().err
        assert message in err and str(inputs[-1]) in err, err
    assert run(checkpoint, tmp_path / "x.npy", "--out", tmp_path / "out", "--denoise", "-1") == 2
    assert "--denoise" in capsys.readouterr().err


def test_a_square_mel_is_synthesized_with_a_warning_naming_the_axis(setup, tmp_path, capsys):
    checkpoint, _, _, mels = setup
    path = write_mel(tmp_path / "square.npy", mels[0][:, :80].numpy())
    assert run(checkpoint, path, "--out", tmp_path / "out") == 0
    err = capsys.readouterr().err
    assert "warning" in err and "80 x 80" in err and "axis 0 as the 80 bands" in err and str(path) in err
    assert len(sf.read(str(tmp_path / "out" / "square.wav"))[0]) == 80 * 256


def test_a_coqui_mel_for_this_model_is_named_in_the_warning(setup, tmp_path, capsys):
    from hifigan.audio import MelSpectrogram
    from hifigan.config import AudioConfig

    checkpoint, _, clips, _ = setup
    coqui = AudioConfig(frontend="coqui", center=True, magnitude_eps=0.0, log="log10", log_gain=20.0,
                        normalize="db-range")
    mel = MelSpectrogram.from_config(coqui)(load_audio(clips[0], 22050).tensor())[0]
    path = write_mel(tmp_path / "coqui.npy", mel.numpy())
    assert run(checkpoint, path, "--out", tmp_path / "out") == 0
    err = capsys.readouterr().err
    assert "warning" in err and "Coqui-normalised" in err and "the hifigan front end" in err


@pytest.mark.parametrize("kind", ["linear", "log10"])
def test_other_front_ends_get_a_warning_and_still_run(setup, tmp_path, capsys, kind):
    checkpoint, _, _, mels = setup
    mel = mels[0].exp() if kind == "linear" else mels[0] / math.log(10)
    path = write_mel(tmp_path / f"{kind}.npy", mel.numpy())
    with pytest.warns(MelRangeWarning, match="linear-magnitude" if kind == "linear" else "log10"):
        load_mel_file(path, 80)
    assert run(checkpoint, path, "--out", tmp_path / "out") == 0
    err = capsys.readouterr().err
    assert "warning" in err and str(path) in err
    assert (tmp_path / "out" / f"{kind}.wav").exists()
    # a natural-log mel of real speech gets no warning
    np.save(tmp_path / "fine.npy", mels[0].numpy())
    assert run(checkpoint, tmp_path / "fine.npy", "--out", tmp_path / "out") == 0
    assert "warning" not in capsys.readouterr().err
