"""Faults around synthesis and export: nothing lost, nothing garbled, one line instead of a traceback.

Inputs and existing outputs are never overwritten by accident; damaged checkpoints (NaN, absurd or
CRC-failing weights), garbled ONNX files and non-finite audio are refused; unusable output folders,
a full disk, unknown devices and bad API inputs are one-line errors; long mels are synthesized in
bounded memory with the same result as one generator call.
"""
import json
import os
import re
import struct
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch

from hifigan import CheckpointError, ConfigError, DataError, Generator, save_generator
from hifigan.checkpoints import load_generator
from hifigan.cli.main import main
from hifigan.config import preset, with_generator_channels
from hifigan.inference import Vocoder
from hifigan.inference.synthesis import synthesize_files

HOP = 256


@pytest.fixture(scope="module")
def config():
    return with_generator_channels(preset("v1"), 16)


@pytest.fixture(scope="module")
def generator(config):
    torch.manual_seed(11)
    return Generator(config.generator)


def copy_of(generator, config):
    """A new module with the fixture's weights: a Vocoder folds (changes) the generator it is given."""
    model = Generator(config.generator)
    model.load_state_dict(generator.state_dict())
    return model


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, generator, config):
    return save_generator(tmp_path_factory.mktemp("faults") / "g.pt", generator.state_dict(), config)


@pytest.fixture(scope="module")
def vocoder(checkpoint):
    return Vocoder.from_checkpoint(checkpoint, device="cpu")


def speech_like(frames, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(80, frames, generator=g).cumsum(-1) * 0.1 - 5.0


def synthesize(checkpoint, *args):
    return main(["synthesize", "--checkpoint", str(checkpoint), "--quiet", *map(str, args)])


def one_line_error(capsys, *parts):
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and "error:" in err, err
    for part in parts:
        assert str(part) in err, (part, err)
    return err


def tone(path, seconds=0.5, rate=22050):
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    sf.write(str(path), 0.3 * np.sin(2 * np.pi * 220 * t), rate)
    return path


# ---- 1. never write over an input, nor over an existing output without --overwrite -------------------

def test_the_input_recording_is_never_overwritten(checkpoint, tmp_path, capsys):
    original = tone(tmp_path / "orig.wav")
    before = original.read_bytes()
    for extra in ([], ["--overwrite"]):
        assert synthesize(checkpoint, original, "--out", tmp_path, *extra) == 2
        one_line_error(capsys, original, "input")
        assert original.read_bytes() == before
    # a folder of inputs written into itself: the same refusal, before anything is written
    assert synthesize(checkpoint, tmp_path, "--out", tmp_path, "--overwrite") == 2
    one_line_error(capsys, original)
    assert original.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["orig.wav"]


def test_an_existing_output_needs_overwrite_and_nothing_runs_before_the_refusal(checkpoint, tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    tone(inputs / "a.wav"), tone(inputs / "b.wav")
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.wav").write_bytes(b"precious")
    assert synthesize(checkpoint, inputs, "--out", out) == 2
    one_line_error(capsys, out / "b.wav", "--overwrite")
    assert (out / "b.wav").read_bytes() == b"precious" and not (out / "a.wav").exists()
    # a plot that would be replaced counts too
    (out / "b.wav").unlink()
    (out / "a.png").write_bytes(b"figure")
    assert synthesize(checkpoint, inputs, "--out", out, "--plot") == 2
    one_line_error(capsys, out / "a.png", "--overwrite")
    assert not (out / "a.wav").exists() and not (out / "b.wav").exists()
    # with --overwrite, both are replaced by valid audio
    (out / "b.wav").write_bytes(b"precious")
    assert synthesize(checkpoint, inputs, "--out", out, "--overwrite") == 0
    assert sf.info(str(out / "b.wav")).frames > 0 and sf.info(str(out / "a.wav")).frames > 0
    capsys.readouterr()


def test_the_python_api_refuses_to_overwrite_too(vocoder, tmp_path):
    mel_file = tmp_path / "x.npy"
    np.save(mel_file, speech_like(20).numpy())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x.wav").write_bytes(b"keep")
    with pytest.raises(DataError, match="already exists"):
        synthesize_files(vocoder, [mel_file], tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "x.wav").read_bytes() == b"keep"
    summary = synthesize_files(vocoder, [mel_file], tmp_path / "out", progress=False, overwrite=True)
    assert summary.files == 1 and sf.info(str(tmp_path / "out" / "x.wav")).frames == 20 * HOP


# ---- 3. unusable output folders, a full disk ------------------------------------------------------

def test_unusable_output_folders_are_one_line(checkpoint, tmp_path, capsys, monkeypatch):
    source = tone(tmp_path / "in.wav")
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    for out in (a_file, a_file / "below", "/proc/hifigan-out", "/sys/hifigan-out"):
        assert synthesize(checkpoint, source, "--out", out) == 2, out
        one_line_error(capsys, out)
    # a read-only folder: refused before synthesis
    read_only = tmp_path / "ro"
    read_only.mkdir()
    _refuse_new_files_in(read_only, monkeypatch)
    assert synthesize(checkpoint, source, "--out", read_only) == 2
    one_line_error(capsys, read_only, "Permission denied")
    assert list(read_only.iterdir()) == []


def _refuse_new_files_in(folder, monkeypatch):
    """Creating files in `folder` fails as in a read-only folder (simulated: root may write anywhere)."""
    real_open = os.open

    def refuse(path, flags, *args, **kwargs):
        if flags & os.O_CREAT and os.path.dirname(os.path.realpath(path)) == os.path.realpath(folder):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)


def _disk_full(monkeypatch):
    """soundfile's write fails half-way with ENOSPC, after writing a header-like prefix."""
    real_write = sf.write

    def fail(file, data, *args, **kwargs):
        real_write(file, data[: len(data) // 2], *args, **kwargs)  # a valid-looking, truncated file
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sf, "write", fail)


def test_a_full_disk_leaves_no_truncated_wav_and_keeps_the_old_one(checkpoint, tmp_path, capsys, monkeypatch):
    source = tone(tmp_path / "in.wav")
    out = tmp_path / "out"
    out.mkdir()
    old = tone(tmp_path / "old.wav", seconds=0.1)
    before = old.read_bytes()
    _disk_full(monkeypatch)
    assert synthesize(checkpoint, source, "--out", out) == 2
    one_line_error(capsys, out / "in.wav", "No space left on device")
    assert list(out.iterdir()) == []  # no output, no temporary file
    old = old.rename(out / "in.wav")
    assert synthesize(checkpoint, source, "--out", out, "--overwrite") == 2
    capsys.readouterr()
    assert old.read_bytes() == before and [p.name for p in out.iterdir()] == ["in.wav"]


def test_save_audio_refuses_non_finite_samples_and_keeps_permissions(tmp_path):
    from hifigan.audio import save_audio

    with pytest.raises(DataError, match="NaN or infinite"):
        save_audio(tmp_path / "x.wav", np.array([0.0, np.nan], np.float32), 22050)
    assert not (tmp_path / "x.wav").exists()
    path = save_audio(tmp_path / "y.wav", np.zeros(100, np.float32), 22050)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # a temporary file's 0600 is not kept
    assert [p.name for p in tmp_path.iterdir()] == ["y.wav"]


# ---- devices and denoise strengths ----------------------------------------------------------------------

def test_unknown_or_missing_devices_are_one_line(checkpoint, generator, config, tmp_path, capsys, monkeypatch):
    source = tone(tmp_path / "in.wav")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("banana", "cuda", "cuda:3"):
        assert synthesize(checkpoint, source, "--out", tmp_path / "out", "--device", device) == 2
        one_line_error(capsys, device)
        with pytest.raises(ConfigError, match=device):
            Vocoder(copy_of(generator, config), config, device=device)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("strength", ["nan", "inf", "-0.1"])
def test_bad_denoise_strengths_are_refused(checkpoint, generator, config, vocoder, tmp_path, capsys, strength):
    source = tone(tmp_path / "in.wav")
    assert synthesize(checkpoint, source, "--out", tmp_path / "out", "--denoise", strength) == 2
    one_line_error(capsys, "--denoise")
    with pytest.raises(ConfigError, match="denoise"):
        Vocoder(copy_of(generator, config), config, device="cpu", denoise=float(strength))
    with pytest.raises(ConfigError, match="denoise"):
        vocoder(speech_like(5), denoise=float(strength))
    with pytest.raises(ConfigError, match="denoise"):
        vocoder.streamer(denoise=float(strength))


# ---- 2. damaged checkpoints and ONNX files ---------------------------------------------------------------

@pytest.mark.parametrize("value, message", [(float("nan"), "NaN or infinite"), (float("inf"), "NaN or infinite"),
                                            (3.0e30, r"magnitude 3e\+30")])
def test_damaged_weights_are_refused_naming_file_and_layer(checkpoint, generator, config, tmp_path, capsys,
                                                            value, message):
    state = {k: v.clone() for k, v in generator.state_dict().items()}
    layer = "resblocks.1.convs1.0.parametrizations.weight.original1"
    state[layer].view(-1)[7] = value
    damaged = save_generator(tmp_path / "damaged.pt", state, config)
    with pytest.raises(CheckpointError, match=message) as caught:
        load_generator(damaged)
    assert str(damaged) in str(caught.value) and "resblocks.1.convs1.0" in str(caught.value)
    assert synthesize(damaged, tone(tmp_path / "in.wav"), "--out", tmp_path / "out") == 2
    one_line_error(capsys, damaged, "resblocks.1.convs1.0")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def _flip_a_byte_in_the_largest_member(path, target):
    data = bytearray(path.read_bytes())
    member = max(zipfile.ZipFile(path).infolist(), key=lambda info: info.file_size)
    name_length, extra_length = struct.unpack("<HH", data[member.header_offset + 26:member.header_offset + 30])
    data[member.header_offset + 30 + name_length + extra_length + member.file_size // 2] ^= 0x40
    target.write_bytes(bytes(data))
    return member.filename


def test_bit_rot_in_a_torch_zip_fails_its_crc(checkpoint, tmp_path):
    rotten = tmp_path / "rotten.pt"
    member = _flip_a_byte_in_the_largest_member(checkpoint, rotten)
    with pytest.raises(CheckpointError, match="CRC") as caught:
        load_generator(rotten)
    assert str(rotten) in str(caught.value) and member in str(caught.value)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=re.escape(str(truncated))):
        load_generator(truncated)


def test_a_checkpoint_whose_config_is_a_string(generator, tmp_path, capsys):
    path = tmp_path / "odd.pt"
    torch.save({"format": "hifigan", "kind": "generator", "config": "v1", "generator": generator.state_dict()}, path)
    with pytest.raises(CheckpointError, match="config") as caught:
        load_generator(path)
    assert str(path) in str(caught.value)
    assert synthesize(path, tone(tmp_path / "in.wav"), "--out", tmp_path / "out") == 2
    one_line_error(capsys, path)


def _tiny_onnx(path, metadata):
    """A one-node ONNX model with our input/output names and the given metadata (no export needed)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["mel"], ["audio"])], "g",
        [helper.make_tensor_value_info("mel", TensorProto.FLOAT, ["batch", 80, "frames"])],
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, ["batch", 80, "frames"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def test_garbled_onnx_files_are_one_line(checkpoint, config, tmp_path, capsys):
    good = _tiny_onnx(tmp_path / "good.onnx", {"hifigan_config": json.dumps(config.to_dict())})
    assert Vocoder.from_checkpoint(good).sampling_rate == config.audio.sampling_rate  # the fixture is sound
    random_bytes = tmp_path / "random.onnx"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(3000))
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases = [
        random_bytes, truncated,
        _tiny_onnx(tmp_path / "none.onnx", {}),
        _tiny_onnx(tmp_path / "not-json.onnx", {"hifigan_config": "{not json"}),
        _tiny_onnx(tmp_path / "a-list.onnx", {"hifigan_config": "[1, 2]"}),
        _tiny_onnx(tmp_path / "bad-field.onnx", {"hifigan_config": json.dumps({"audio": {"n_mels": "many"}})}),
    ]
    source = tone(tmp_path / "in.wav")
    for path in cases:
        with pytest.raises((CheckpointError, ConfigError), match=re.escape(str(path))):
            Vocoder.from_checkpoint(path)
        assert synthesize(path, source, "--out", tmp_path / "out") == 2, path
        one_line_error(capsys, path)


def test_export_into_an_unwritable_folder_is_one_line(checkpoint, tmp_path, capsys, monkeypatch):
    for out in ("/sys/hifigan-export.ts", "/proc/hifigan/g.ts", tmp_path):  # tmp_path: a folder, not a file
        assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--no-verify",
                     "--out", str(out)]) == 2, out
        one_line_error(capsys, out)
    read_only = tmp_path / "ro"
    read_only.mkdir()
    _refuse_new_files_in(read_only, monkeypatch)
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--no-verify",
                 "--out", str(read_only / "g.ts")]) == 2
    one_line_error(capsys, read_only / "g.ts", "Permission denied")
    assert list(read_only.iterdir()) == []


def test_an_export_that_fails_half_way_leaves_no_file(generator, config, tmp_path, monkeypatch):
    from hifigan.inference import export as export_module

    target = tmp_path / "g.onnx"

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module, "onnx_model_bytes", lambda *a, **k: b"\x08\x01" * 1000)
    monkeypatch.setattr(os, "fsync", broken)  # where a full disk shows up for buffered writes
    with pytest.raises((ConfigError, CheckpointError), match="No space left"):
        export_module.export_onnx(generator, config, target)
    assert list(tmp_path.iterdir()) == []


# ---- non-finite audio and implausible mels -------------------------------------------------------------

def test_non_finite_audio_is_never_returned_or_written(generator, config, tmp_path):
    broken = copy_of(generator, config)
    with torch.no_grad():
        broken.conv_post.parametrizations.weight.original1.fill_(float("nan"))  # the API skips load checks
    vocoder = Vocoder(broken, config, device="cpu", backend="torch")
    mel = speech_like(12)
    with pytest.raises(DataError, match="NaN or infinite audio"):
        vocoder(mel)
    with pytest.raises(DataError, match="mel 0 of the list: the generator made NaN"):
        vocoder([mel[:, :3], mel])
    with pytest.raises(DataError, match="NaN or infinite audio"):
        list(vocoder.stream([mel]))
    mel_file = tmp_path / "in" / "m.npy"
    mel_file.parent.mkdir()
    np.save(mel_file, mel.numpy())
    with pytest.raises(DataError, match="NaN or infinite audio") as caught:
        synthesize_files(vocoder, [mel_file], tmp_path / "out", progress=False)
    assert str(mel_file) in str(caught.value)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("value", [3.4e38, -1.0e6, 1.0e4])
def test_implausible_mel_magnitudes_are_refused(vocoder, value):
    mel = speech_like(6)
    mel[3, 2] = value
    with pytest.raises(DataError, match="far outside"):
        vocoder(mel)
    with pytest.raises(DataError, match="far outside"):
        vocoder.streamer().push(mel)


# ---- 4. the Python API: chunked long inputs, and bad inputs ----------------------------------------------

@pytest.mark.parametrize("backend, options", [("torch", {}), ("fast", {}), ("torch", {"denoise": 0.3}),
                                              ("torch", {"toolkit_padding": True})])
def test_long_mels_are_chunked_and_equal_one_call(generator, config, backend, options):
    threshold = 16
    model = copy_of(generator, config)
    whole = Vocoder(model, config, device="cpu", backend=backend, **options)
    chunked = Vocoder(model, config, device="cpu", backend=backend, chunk_frames=threshold, **options)
    field = chunked.receptive_field
    if chunked.denoise:
        chunked.denoiser()  # estimated once, on its own 88-frame mel: not what is measured below
    longest = []
    real_generate = chunked._generate

    def recording(mel):
        longest.append(mel.shape[-1])
        return real_generate(mel)

    chunked._generate = recording
    mel = speech_like(5 * threshold + 3, seed=2)
    expected = whole(mel)
    got = chunked(mel)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    pad = 2 * chunked.toolkit_padding
    # bounded: never more than one chunk plus the receptive field (and the toolkit's edge frames)
    assert longest and max(longest) <= threshold + field.left + field.right + pad
    # batches, lists and lengths take the chunked path per item and still equal the whole-utterance result
    short = speech_like(7, seed=3)
    for a, b in zip(chunked([mel, short]), whole([mel, short])):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    if not chunked.toolkit_padding:
        batch = torch.stack([mel, speech_like(mel.shape[-1], seed=4)])
        torch.testing.assert_close(chunked(batch), whole(batch), atol=1e-5, rtol=0)
        lengths = [mel.shape[-1], 40]
        for a, b in zip(chunked(batch, lengths=lengths), whole(batch, lengths=lengths)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert max(longest) <= threshold + field.left + field.right + pad


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda v: v(torch.zeros(0, 80, 5)), "empty batch"),
        (lambda v: v(np.zeros((0, 80, 5), np.float32)), "empty batch"),
        (lambda v: v([]), "no mels"),
        (lambda v: v([speech_like(4), torch.zeros(80, 0)]), "mel 1 of the list has no frames"),
        (lambda v: v(np.full((80, 5), None, dtype=object)), "real numbers"),
        (lambda v: v(np.zeros((80, 5), np.complex64)), "real numbers"),
        (lambda v: v(torch.zeros(80, 5, dtype=torch.complex64)), "real numbers"),
        (lambda v: v([torch.zeros(80, 5, dtype=torch.complex64)]), "real numbers"),
        (lambda v: v.resynthesize(np.zeros(22050, np.float32), 0), "sampling_rate"),
        (lambda v: v.mel(np.zeros(22050, np.float32), sampling_rate=-16000), "sampling_rate"),
        (lambda v: v.mel(np.zeros(22050, np.float32), sampling_rate=16000.5), "sampling_rate"),
        (lambda v: v.mel(np.full(22050, np.nan, np.float32)), "NaN or infinite"),
        (lambda v: v.mel(np.zeros(22050, np.complex64)), "real numbers"),
        (lambda v: v(torch.zeros(2, 80, 5) - 5, lengths=[2.5, 5]), "whole number"),
        (lambda v: v(torch.zeros(2, 80, 5) - 5, lengths=["a", 5]), "whole number"),
        (lambda v: v(torch.zeros(2, 80, 5) - 5, lengths=torch.tensor([2.5, 5.0])), "whole number"),
        (lambda v: v(torch.zeros(2, 80, 5) - 5, lengths=5), "lengths"),
    ],
)
def test_bad_api_inputs_are_the_packages_own_one_line_errors(vocoder, call, message):
    with pytest.raises(DataError, match=message) as caught:
        call(vocoder)
    assert "\n" not in str(caught.value)


def test_whole_number_lengths_of_other_types_still_work(vocoder):
    batch = torch.stack([speech_like(9, 1), speech_like(9, 2)])
    expected = vocoder(batch, lengths=[9, 4])
    for lengths in (torch.tensor([9, 4]), np.array([9, 4]), [9.0, 4.0]):
        for a, b in zip(vocoder(batch, lengths=lengths), expected):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_synthesize_files_runs_long_mels_chunked_with_the_same_audio(generator, config, tmp_path):
    model = copy_of(generator, config)
    whole = Vocoder(model, config, device="cpu")
    chunked = Vocoder(model, config, device="cpu", chunk_frames=16)
    mel = speech_like(70, seed=5)
    np.save(tmp_path / "long.npy", mel.numpy())
    np.save(tmp_path / "short.npy", mel[:, :9].numpy())
    summary = synthesize_files(chunked, [tmp_path / "long.npy", tmp_path / "short.npy"], tmp_path / "out",
                               subtype="FLOAT", progress=False, max_batch_frames=16)
    assert summary.files == 2
    for name, expected in (("long", whole(mel)), ("short", whole(mel[:, :9]))):
        audio, _ = sf.read(str(tmp_path / "out" / f"{name}.wav"), dtype="float32")
        np.testing.assert_allclose(audio, np.clip(expected.numpy(), -1, 1), atol=1e-5)
