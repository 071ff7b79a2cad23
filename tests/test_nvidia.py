"""NVIDIA DeepLearningExamples / NGC HiFi-GAN checkpoints load through `load_generator` and `Vocoder`.

The test files are built in the layout of NVIDIA's Checkpointer.maybe_save
(PyTorch/SpeechSynthesis/HiFiGAN/common/utils.py): `generator` (weight norm as
weight_g/weight_v, resblocks grouped per level), `gen_ema`, `config`,
`train_setup`, `train_state`.
"""
import pytest
import torch

from hifigan import CheckpointError, ConfigError, Generator, load_generator, preset
from hifigan.config import with_generator_channels
from hifigan.inference import Vocoder



def legacy_weight_norm_state(generator):
    """Our parametrized state dict in the authors'/NVIDIA's old-style weight_g/weight_v names."""
    out = {}
    for key, value in generator.state_dict().items():
        key = key.replace("parametrizations.weight.original0", "weight_g")
        key = key.replace("parametrizations.weight.original1", "weight_v")
        out[key] = value.clone()
    return out


def nvidia_layout(state, kernels, prefix=""):
    """Flat `resblocks.<level * kernels + k>.` -> NVIDIA's nested `resblocks.<level>.<k>.`."""
    out = {}
    for key, value in state.items():
        if key.startswith("resblocks."):
            _, index, rest = key.split(".", 2)
            key = f"resblocks.{int(index) // kernels}.{int(index) % kernels}.{rest}"
        out[prefix + key] = value
    return out


@pytest.fixture(scope="module")
def nvidia_model():
    # NVIDIA's argparse default orders the resblock kernels [11, 7, 3]; audio at 16 kHz with fmax 7600
    config = with_generator_channels(preset("v1"), 16)
    config.generator.resblock_kernel_sizes = [11, 7, 3]
    config.audio.sampling_rate = 16000
    config.audio.fmax = 7600.0
    config.validate()
    torch.manual_seed(11)
    generator = Generator(config.generator)
    gen_config = {
        "upsample_rates": [8, 8, 2, 2],
        "upsample_kernel_sizes": [16, 16, 4, 4],
        "upsample_initial_channel": 16,
        "resblock": "1",
        "resblock_kernel_sizes": [11, 7, 3],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    }
    train_setup = {
        "segment_size": 8192, "filter_length": 1024, "num_mels": 80, "hop_length": 256,
        "win_length": 1024, "sampling_rate": 16000, "mel_fmin": 0.0, "mel_fmax": 7600.0,
        "mel_fmax_loss": None, "max_wav_value": 32768.0, "seed": 1234, "base_lr": 3e-4,
        "lr_decay": 0.9998, "epochs_all": 1000,
    }
    return generator, config, gen_config, train_setup


def expected_audio(generator, mel):
    with torch.inference_mode():
        return generator.eval()(mel[None])[0, 0]


def save_nvidia(path, state, gen_config, train_setup, **extra):
    payload = {"generator": state, "gen_ema": None, "config": gen_config, "train_setup": train_setup,
               "train_state": {"epoch": 1000, "iters_all": 123456}, **extra}
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("prefix", ["", "module."])
def test_nvidia_checkpoint_loads_with_its_config(tmp_path, nvidia_model, prefix):
    generator, config, gen_config, train_setup = nvidia_model
    state = nvidia_layout(legacy_weight_norm_state(generator), kernels=3, prefix=prefix)
    assert any(k.startswith(prefix + "resblocks.2.1.convs1.0.weight_g") for k in state)
    path = save_nvidia(tmp_path / "hifigan_gen_checkpoint_1000.pt", state, gen_config, train_setup)

    loaded, cfg = load_generator(path, return_config=True)
    assert cfg.generator.resblock_kernel_sizes == [11, 7, 3]
    assert (cfg.audio.sampling_rate, cfg.audio.fmax, cfg.audio.fmax_for_loss) == (16000, 7600.0, None)
    assert (cfg.audio.n_fft, cfg.audio.hop_length, cfg.audio.win_length, cfg.audio.n_mels) == (1024, 256, 1024, 80)
    mel = torch.randn(80, 14) - 4
    with torch.inference_mode():
        got = loaded(mel[None])[0, 0]
    torch.testing.assert_close(got, expected_audio(generator, mel), atol=1e-6, rtol=1e-5)

    vocoder = Vocoder.from_checkpoint(path, device="cpu")
    assert vocoder.sampling_rate == 16000
    torch.testing.assert_close(vocoder(mel), expected_audio(generator, mel), atol=1e-6, rtol=1e-5)


def test_older_flat_layout_and_conv2d_shaped_weights(tmp_path, nvidia_model):
    """Files from before NVIDIA's ONNX fix keep flat resblocks; some hold conv weights with a trailing 1."""
    generator, _, gen_config, train_setup = nvidia_model
    state = legacy_weight_norm_state(generator)
    state["conv_post.weight_v"] = state["conv_post.weight_v"].unsqueeze(-1)
    path = save_nvidia(tmp_path / "old.pt", state, gen_config, train_setup)
    mel = torch.randn(80, 9) - 4
    loaded = load_generator(path)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(mel[None])[0, 0], expected_audio(generator, mel), atol=1e-6, rtol=1e-5)


def test_without_config_falls_back_to_a_given_config(tmp_path, nvidia_model):
    generator, config, gen_config, train_setup = nvidia_model
    state = nvidia_layout(legacy_weight_norm_state(generator), kernels=3)
    path = tmp_path / "no_config.pt"
    torch.save({"generator": state, "train_state": {"epoch": 1}}, path)
    with pytest.raises(ConfigError, match="pass config="):
        load_generator(path)
    loaded = load_generator(path, config=config)
    mel = torch.randn(80, 6) - 4
    with torch.inference_mode():
        torch.testing.assert_close(loaded(mel[None])[0, 0], expected_audio(generator, mel), atol=1e-6, rtol=1e-5)


def test_broken_nvidia_config_is_a_clear_error(tmp_path, nvidia_model):
    generator, _, gen_config, train_setup = nvidia_model
    state = nvidia_layout(legacy_weight_norm_state(generator), kernels=3)
    bad = dict(gen_config)
    del bad["upsample_rates"]
    path = save_nvidia(tmp_path / "bad.pt", state, bad, train_setup)
    with pytest.raises(CheckpointError, match="lacks \\['upsample_rates'\\]"):
        load_generator(path)
    wrong_rate = dict(train_setup, hop_length=300)
    path = save_nvidia(tmp_path / "bad_hop.pt", state, gen_config, wrong_rate)
    with pytest.raises(CheckpointError, match="hop_length"):
        load_generator(path)


def test_authors_files_are_not_mistaken_for_nvidia(tmp_path, tiny_config):
    torch.manual_seed(2)
    generator = Generator(tiny_config.generator)
    path = tmp_path / "g_00000001"
    torch.save({"generator": legacy_weight_norm_state(generator)}, path)
    loaded = load_generator(path, config=tiny_config)
    mel = torch.randn(80, 5) - 4
    with torch.inference_mode():
        torch.testing.assert_close(loaded(mel[None])[0, 0], expected_audio(generator, mel), atol=1e-6, rtol=1e-5)
