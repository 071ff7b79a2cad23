"""TorchScript and ONNX exports equal eager PyTorch at other batch sizes and lengths; ONNX backend."""
import pytest
import torch

from hifigan import CheckpointError, Generator, save_generator
from hifigan.cli.main import main
from hifigan.inference import Vocoder
from hifigan.inference.export import (
    CONFIG_KEY,
    export,
    export_onnx,
    load_torchscript,
    onnx_config,
    onnx_session,
)



@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A small V3-shaped generator: the ONNX exporter's time grows with the layer count, not the width."""
    from hifigan.config import preset, with_generator_channels

    config = with_generator_channels(preset("v3"), 32)
    torch.manual_seed(7)
    generator = Generator(config.generator)  # weight norm still on: export folds it
    folder = tmp_path_factory.mktemp("export")
    checkpoint = save_generator(folder / "g.pt", generator.state_dict(), config)
    return generator, config, checkpoint, folder


@pytest.fixture(scope="module")
def onnx_file(model):
    generator, config, _, folder = model
    return export_onnx(generator, config, folder / "g.onnx")


def eager(generator, mel):
    with torch.inference_mode():
        return generator.eval()(mel)


SHAPES = [(1, 80, 1), (1, 80, 29), (3, 80, 11)]


def test_torchscript_equals_eager_for_any_batch_and_length(model):
    generator, config, _, folder = model
    result = export(generator, config, "torchscript", folder / "g.ts")
    assert result.max_abs_diff < 1e-5
    module, saved_config = load_torchscript(result.path)
    assert saved_config == config
    for shape in SHAPES:
        mel = torch.randn(*shape) - 4
        torch.testing.assert_close(module(mel), eager(generator, mel), atol=1e-5, rtol=0)
    assert generator.has_weight_norm  # the caller's module is left as it was


def test_onnx_runtime_equals_eager_for_any_batch_and_length(model, onnx_file):
    generator, config, _, _ = model
    session = onnx_session(onnx_file)
    (mel_input,) = session.get_inputs()
    assert mel_input.name == "mel" and isinstance(mel_input.shape[0], str) and isinstance(mel_input.shape[2], str)
    assert onnx_config(session, str(onnx_file)) == config
    assert session.get_modelmeta().custom_metadata_map[CONFIG_KEY]
    for shape in SHAPES:
        mel = torch.randn(*shape) - 4
        got = torch.from_numpy(session.run(None, {"mel": mel.numpy()})[0])
        torch.testing.assert_close(got, eager(generator, mel), atol=1e-4, rtol=0)


def test_vocoder_runs_onnx_files_and_the_onnx_backend(model, onnx_file):
    generator, config, checkpoint, _ = model
    reference = Vocoder.from_checkpoint(checkpoint, device="cpu")
    from_file = Vocoder.from_checkpoint(onnx_file)
    assert from_file.backend == "onnx" and from_file.generator is None
    assert from_file.sampling_rate == config.audio.sampling_rate
    mels = [torch.randn(80, 23) - 4, torch.randn(80, 9) - 4]
    for got, expected in zip(from_file(mels), reference(mels)):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    streamed = torch.cat(list(from_file.stream(mels[0].split(5, dim=-1))))
    torch.testing.assert_close(streamed, reference(mels[0]), atol=1e-4, rtol=0)


def test_onnx_backend_exports_in_memory(model, onnx_file, monkeypatch):
    """backend="onnx" runs `onnx_model_bytes` (what export_onnx writes) through a session from bytes."""
    import hifigan.inference.export as export_module

    generator, config, checkpoint, _ = model
    calls = []

    def exported_bytes(gen, cfg):  # the export itself is tested above; reuse its file (export is slow)
        calls.append((gen.config, cfg))
        return onnx_file.read_bytes()

    monkeypatch.setattr(export_module, "onnx_model_bytes", exported_bytes)
    reference = Vocoder.from_checkpoint(checkpoint, device="cpu")
    in_memory = Vocoder.from_checkpoint(checkpoint, device="cpu", backend="onnx")
    assert len(calls) == 1 and calls[0][1] == config and in_memory.backend == "onnx"
    mel = torch.randn(80, 17) - 4
    torch.testing.assert_close(in_memory(mel), reference(mel), atol=1e-4, rtol=0)
    with pytest.raises(Exception, match="runs on CPU"):
        Vocoder.from_checkpoint(checkpoint, device="cuda", backend="onnx")


def test_onnx_without_our_metadata_is_refused(model, tmp_path):
    import onnx

    generator, config, _, folder = model
    proto = onnx.load(str(folder / "g.onnx"))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(CheckpointError, match="no 'hifigan_config' metadata"):
        Vocoder.from_checkpoint(bare)


def test_export_cli(model, tmp_path, capsys):
    _, _, checkpoint, _ = model
    out = tmp_path / "cli.ts"
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "torchscript", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.exists() and "max |exported - eager|" in text
    assert main(["export", "--checkpoint", str(tmp_path / "missing.pt"), "--format", "onnx",
                 "--out", str(tmp_path / "x.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
