"""Other toolkits' HiFi-GANs: their checkpoints load with no hints, reproduce the toolkit's own output,
and our front end built from their config reproduces the toolkit's own preprocessing mel.

The fixtures under tests/fixtures/interop/<toolkit>/ were made by running each toolkit's own code
(make_fixture.py and VERSIONS.txt there; FACTS.md says what was read from its source). The
toolkits are not needed here. "1e-4 relative" is max |ours - theirs| / max |theirs|; mels are
compared as the linear magnitudes they stand for (`linear_mel`), relative to the loudest bin,
because FFT rounding in the quietest bins differs between CPUs (shared/fixtures/README.md).
"""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
import torch

from hifigan import MelSpectrogram, load_generator
from hifigan.audio.frontends import with_frontend
from hifigan.audio.mel import linear_mel
from hifigan.checkpoints.formats import import_generator
from hifigan.checkpoints.formats.coqui import config_from_coqui
from hifigan.checkpoints.safe_pickle import UnsafeCheckpoint
from hifigan.errors import CheckpointError, DataError
from hifigan.inference import Vocoder

INTEROP = Path(__file__).parent / "fixtures" / "interop"
TOLERANCE = 1e-4


def relative(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    ours, theirs = ours.reshape(-1).double(), theirs.reshape(-1).double()
    assert ours.shape == theirs.shape
    return float((ours - theirs).abs().max() / theirs.abs().max())


def mel_error(ours: torch.Tensor, theirs: torch.Tensor, audio) -> float:
    assert ours.shape[-2:] == theirs.shape[-2:], (ours.shape, theirs.shape)
    return relative(linear_mel(ours, audio), linear_mel(theirs.reshape(ours.shape), audio))


def reference(*parts: str) -> dict:
    return torch.load(INTEROP.joinpath(*parts, "reference.pt"), weights_only=True)


# name: (checkpoint, reference folder, toolkit format, output key, toolkit padding)
CASES = {
    "parallel-wavegan-22k": ("parallel_wavegan/ljspeech_22k/checkpoint-1steps.pkl", "parallel_wavegan/ljspeech_22k",
                             "parallel-wavegan", "audio_output", False),
    "parallel-wavegan-24k": ("parallel_wavegan/jsut_24k/checkpoint-1steps.pkl", "parallel_wavegan/jsut_24k",
                             "parallel-wavegan", "audio_output", False),
    "coqui": ("coqui/trainer_0.4_coqui_tts_0.28/best_model.pth", "coqui", "coqui", "audio_output", True),
    "coqui-weight-g-v": ("coqui/legacy_trainer_weight_g_v/checkpoint_2.pth", "coqui", "coqui", "audio_output", True),
    "coqui-0.0.x": ("coqui/legacy_v0.0.x_model_disc/model_file.pth.tar", "coqui", "coqui", "audio_output", True),
    "speechbrain": ("speechbrain/generator.ckpt", "speechbrain", "speechbrain", "audio_output", True),
    "speechbrain-0.5": ("speechbrain/legacy_sb0.5.16/generator.ckpt", "speechbrain", "speechbrain",
                        "audio_output", True),
    "speechbrain-folder": ("speechbrain", "speechbrain", "speechbrain", "audio_output", True),
    "nvidia": ("nvidia/hifigan_gen_checkpoint_10.pt", "nvidia", "nvidia", "audio_output", False),
    "nemo": ("nemo/hifigan.nemo", "nemo", "nemo", "audio_output", False),
    "nemo-lightning": ("nemo/HifiGan--last.ckpt", "nemo", "nemo", "audio_output", False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_checkpoint_loads_without_hints_and_reproduces_the_toolkit(case):
    path, ref_dir, fmt, key, toolkit_padding = CASES[case]
    ref = reference(ref_dir)
    generator, config, imported = load_generator(INTEROP / path, return_import=True)
    assert imported.format == fmt
    vocoder = Vocoder(generator, config, device="cpu", toolkit_padding=toolkit_padding)
    audio = vocoder(ref["mel_input"][0])
    assert relative(audio, ref[key]) < TOLERANCE
    if toolkit_padding:  # the toolkit's own call pads 5 frames each side and keeps them
        assert audio.numel() == (ref["mel_input"].shape[-1] + 10) * config.audio.hop_length
        plain = Vocoder(generator, config, device="cpu")(ref["mel_input"][0])
        assert relative(plain, ref["audio_output_raw"]) < TOLERANCE


FRONT_ENDS = {
    # name: (checkpoint or None, reference folder, reference key, front end to apply to the checkpoint's audio)
    "parallel-wavegan-22k": (CASES["parallel-wavegan-22k"][0], "parallel_wavegan/ljspeech_22k", "clip_mel"),
    "parallel-wavegan-24k": (CASES["parallel-wavegan-24k"][0], "parallel_wavegan/jsut_24k", "clip_mel"),
    "coqui": (CASES["coqui"][0], "coqui", "clip_mel"),
    "speechbrain": (CASES["speechbrain"][0], "speechbrain", "clip_mel"),
    "nvidia-hifigan": (CASES["nvidia"][0], "nvidia", "clip_mel_hifigan"),
    "nemo": (CASES["nemo"][0], "nemo", "clip_mel"),
    "nemo-lightning": (CASES["nemo-lightning"][0], "nemo", "clip_mel"),
}


@pytest.mark.parametrize("case", sorted(FRONT_ENDS))
def test_front_end_from_the_toolkit_config_reproduces_its_mel(case):
    path, ref_dir, key = FRONT_ENDS[case]
    ref = reference(ref_dir)
    _, config = load_generator(INTEROP / path, return_config=True)
    mel = MelSpectrogram.from_config(config.audio)(ref["clip"].float())
    assert mel_error(mel, ref[key], config.audio) < TOLERANCE
    # and in the log domain, where the values themselves are compared
    assert float((mel.reshape(-1) - ref[key].reshape(-1)).abs().max()) < 1e-3 * float(ref[key].abs().max())


def test_fastpitch_front_end_is_nvidias_tacotron_stft():
    ref = reference("nvidia")
    _, config = load_generator(INTEROP / CASES["nvidia"][0], return_config=True)
    audio = with_frontend(config.audio, "fastpitch")
    mel = MelSpectrogram.from_config(audio)(ref["clip"].float())[0]
    assert mel.shape == ref["clip_mel_fastpitch"].shape == (80, 1 + ref["clip"].numel() // 256)
    assert mel_error(mel, ref["clip_mel_fastpitch"], audio) < TOLERANCE


def test_coqui_default_front_end_in_decibels_normalised_to_plus_minus_four():
    ref = reference("coqui")
    notes: list[str] = []
    config = config_from_coqui({"audio": ref["default_audio_config"],
                                "generator_model_params": {"upsample_initial_channel": 32}}, "defaults",
                               INTEROP, notes)
    assert config.audio.normalize == "db-range" and config.audio.log_gain == 20.0
    mel = MelSpectrogram.from_config(config.audio)(ref["clip"].float())[0]
    expected = ref["clip_mel_default_config"]
    assert float(expected.min()) >= -4.0 and float(expected.max()) <= 4.0
    assert float((mel - expected).abs().max()) < 1e-3 * 8  # of the [-4, 4] range
    assert mel_error(mel, expected, config.audio) < TOLERANCE


def test_nvidia_file_without_config_fits_the_dle_preset(tmp_path):
    """A full-size NVIDIA generator file without `config`: its [11, 7, 3] kernel order is preset v1-dle."""
    from hifigan import Generator, preset

    config = preset("v1-dle")
    state = Generator(config.generator).state_dict()
    nested = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "resblocks":
            index = int(parts[1])
            key = ".".join(["resblocks", str(index // 3), str(index % 3)] + parts[2:])
        nested[key.replace("parametrizations.weight.original0", "weight_g")
               .replace("parametrizations.weight.original1", "weight_v")] = value
    torch.save({"generator": nested}, tmp_path / "generator.pt")
    _, loaded, imported = load_generator(tmp_path / "generator.pt", return_import=True)
    assert loaded.name == "v1-dle" and loaded.generator.resblock_kernel_sizes == [11, 7, 3]
    assert any("v1-dle" in note for note in imported.notes)


# ---- everything else we have works on imported models ----------------------------------------------

@pytest.mark.parametrize("case", ["parallel-wavegan-24k", "speechbrain", "coqui", "nemo"])
def test_batching_streaming_and_fast_path_on_imported_models(case):
    path = CASES[case][0]
    generator, config = load_generator(INTEROP / path, return_config=True)
    torch.manual_seed(0)
    mels = [torch.randn(config.audio.n_mels, n) - 4 for n in (23, 9)]
    eager = Vocoder(generator, config, device="cpu", backend="torch")
    singles = [eager(m) for m in mels]
    for got, want in zip(eager(mels), singles):
        assert (got - want).abs().max() < 1e-5
    streamed = torch.cat(list(eager.stream([mels[0][:, :7], mels[0][:, 7:16], mels[0][:, 16:]])))
    assert (streamed - singles[0]).abs().max() < 1e-5
    auto = Vocoder(generator, config, device="cpu")
    assert auto.backend == "fast"  # SpeechBrain's reflect padding included
    assert (auto(mels[0]) - singles[0]).abs().max() < 1e-5
    for got, want in zip(auto(mels), singles):  # exact batching on the fast path too
        assert (got - want).abs().max() < 1e-5
    streamed = torch.cat(list(auto.stream([mels[0][:, :7], mels[0][:, 7:16], mels[0][:, 16:]])))
    assert (streamed - singles[0]).abs().max() < 1e-5
    if config.generator.conv_padding_mode == "reflect":  # too short to reflect: one clear line
        with pytest.raises(DataError, match="at least 4 frames"):
            auto(mels[0][:, :3])


@pytest.mark.parametrize("case", ["parallel-wavegan-24k", "speechbrain"])
def test_onnx_export_of_imported_models(case, tmp_path):
    from hifigan.inference.export import export

    generator, config = load_generator(INTEROP / CASES[case][0], return_config=True)
    out = export(generator, config, "onnx", tmp_path / "model.onnx")
    assert out.max_abs_diff < 1e-4
    vocoder = Vocoder.from_checkpoint(tmp_path / "model.onnx")
    assert vocoder.config.generator.conv_padding_mode == config.generator.conv_padding_mode
    mel = torch.randn(config.audio.n_mels, 11) - 4
    reference_audio = Vocoder(generator, config, device="cpu", backend="torch")(mel)
    assert (vocoder(mel) - reference_audio).abs().max() < 1e-4


def test_inspect_names_toolkit_files_and_front_end(capsys):
    from hifigan.cli.main import main

    assert main(["inspect", str(INTEROP / CASES["parallel-wavegan-24k"][0])]) == 0
    out = capsys.readouterr().out
    assert "ESPnet / ParallelWaveGAN" in out and "24000 Hz" in out and "stats.h5" in out
    assert "parallel-wavegan" in out and "log10" in out
    assert main(["inspect", str(INTEROP / "speechbrain")]) == 0
    out = capsys.readouterr().out
    assert "SpeechBrain" in out and "reflect padding" in out and "5 frames" in out


def test_synthesize_cli_on_a_toolkit_checkpoint(tmp_path):
    from hifigan.cli.main import main

    ref = reference("coqui")
    mel_path = tmp_path / "utt.npy"
    import numpy as np

    np.save(mel_path, ref["mel_input"][0].numpy())
    assert main(["synthesize", str(mel_path), "--checkpoint", str(INTEROP / CASES["coqui"][0]),
                 "--out", str(tmp_path / "out")]) == 0
    import soundfile

    audio, rate = soundfile.read(tmp_path / "out" / "utt.wav")
    assert rate == 22050 and len(audio) == 32 * 256


# ---- refusing what is not data ------------------------------------------------------------------------

class _Payload:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_torch_file(path: Path, wrap) -> Path:
    marker = path.parent / "PWNED"
    torch.save(wrap(_Payload(marker)), path)
    return marker


@pytest.mark.parametrize("layout", ["parallel-wavegan", "coqui", "speechbrain", "lightning", "nemo"])
def test_malicious_pickles_are_refused_without_running(tmp_path, layout):
    weight = torch.zeros(2)
    if layout == "parallel-wavegan":
        path = tmp_path / "checkpoint-100steps.pkl"
        marker = _evil_torch_file(path, lambda p: {"model": {"generator": {"input_conv.bias": weight}}, "x": p})
    elif layout == "coqui":
        path = tmp_path / "best_model.pth"
        marker = _evil_torch_file(path, lambda p: {"model": {"model_g.conv_pre.bias": weight}, "config": p})
    elif layout == "speechbrain":
        path = tmp_path / "generator.ckpt"
        marker = _evil_torch_file(path, lambda p: {"conv_pre.conv.bias": p})
    elif layout == "lightning":
        path = tmp_path / "HifiGan--last.ckpt"
        marker = _evil_torch_file(path, lambda p: {"state_dict": {"generator.conv_pre.bias": weight},
                                                   "hyper_parameters": {"cfg": p}})
    else:
        inner = tmp_path / "model_weights.ckpt"
        marker = _evil_torch_file(inner, lambda p: {"generator.conv_pre.bias": p})
        path = tmp_path / "model.nemo"
        with tarfile.open(path, "w") as archive:
            archive.add(inner, arcname="./model_weights.ckpt")
            config = b"target: nemo.collections.tts.models.hifigan.HifiGanModel\ngenerator: {}\n"
            info = tarfile.TarInfo("./model_config.yaml")
            info.size = len(config)
            archive.addfile(info, io.BytesIO(config))
        inner.unlink()
    with pytest.raises(UnsafeCheckpoint, match="refused without running"):
        load_generator(path)
    assert not marker.exists()


def test_files_no_importer_knows_are_named_for_what_they_are(tmp_path):
    empty = tmp_path / "g.pt"
    empty.touch()
    with pytest.raises(CheckpointError, match="empty"):
        import_generator(empty)
    noise = tmp_path / "noise.bin"
    noise.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CheckpointError) as info:
        import_generator(noise)
    assert "weights_only" not in str(info.value) and "noise.bin" in str(info.value)
    archive = tmp_path / "other.nemo"
    with tarfile.open(archive, "w") as handle:
        data = b"just text"
        member = tarfile.TarInfo("./notes.txt")
        member.size = len(data)
        handle.addfile(member, io.BytesIO(data))
    with pytest.raises(CheckpointError, match="tar archive"):
        import_generator(archive)
    fastpitch = tmp_path / "fastpitch.nemo"
    with tarfile.open(fastpitch, "w") as handle:
        for name, data in (("./model_config.yaml", b"target: nemo.collections.tts.models.FastPitchModel\n"),
                           ("./model_weights.ckpt", b"")):
            member = tarfile.TarInfo(name)
            member.size = len(data)
            handle.addfile(member, io.BytesIO(data))
    with pytest.raises(CheckpointError, match="NeMo archive without a generator.*FastPitchModel"):
        import_generator(fastpitch)
    with pytest.raises(CheckpointError, match="HDF5"):
        import_generator(INTEROP / "parallel_wavegan" / "ljspeech_22k" / "stats.h5")


@pytest.mark.parametrize("case", ["nemo", "parallel-wavegan-24k", "speechbrain-folder"])
def test_finetune_starts_from_a_toolkit_checkpoint(case):
    from hifigan.training.finetune import finetune_config, load_source

    found = load_source(INTEROP / CASES[case][0])
    assert not found.has_discriminators
    config = finetune_config(found, overrides={"training.discriminator_channel_divisor": 16})
    # the toolkit's front end and architecture are what the fine-tuned model keeps
    _, original = load_generator(INTEROP / CASES[case][0], return_config=True)
    assert config.audio == original.audio and config.generator == original.generator
