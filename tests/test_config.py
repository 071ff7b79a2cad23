import pytest

from hifigan import AudioConfig, ConfigError, GeneratorConfig, HiFiGANConfig, preset


@pytest.mark.parametrize("name", ["v1", "v2", "v3"])
def test_presets_round_trip_through_yaml_and_json(tmp_path, name):
    config = preset(name)
    for suffix in (".yaml", ".json"):
        path = tmp_path / f"{name}{suffix}"
        config.save(path)
        assert HiFiGANConfig.load(path) == config


def test_upsampling_must_multiply_to_hop():
    config = HiFiGANConfig(audio=AudioConfig(hop_length=300))
    with pytest.raises(ConfigError, match=r"8 x 8 x 2 x 2 = 256.*hop_length is 300"):
        config.validate()


@pytest.mark.parametrize(
    "sampling_rate, hop, rates, kernels",
    [(16000, 200, [5, 5, 4, 2], [11, 11, 8, 4]), (24000, 300, [5, 5, 4, 3], [11, 11, 8, 7]),
     (44100, 512, [8, 8, 4, 2], [16, 16, 8, 4])],
)
def test_other_sample_rates_validate(sampling_rate, hop, rates, kernels):
    config = HiFiGANConfig(
        audio=AudioConfig(sampling_rate=sampling_rate, hop_length=hop, fmax=sampling_rate / 2),
        generator=GeneratorConfig(upsample_rates=rates, upsample_kernel_sizes=kernels),
    )
    config.training.segment_size = hop * 32
    config.validate()


def test_segment_must_be_multiple_of_hop():
    config = preset("v1")
    config.training.segment_size = 8000
    with pytest.raises(ConfigError, match="segment_size.*multiple"):
        config.validate()


def test_unknown_keys_are_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("audio:\n  sample_rate: 22050\n")
    with pytest.raises(ConfigError, match="sample_rate"):
        HiFiGANConfig.load(path)


def test_authors_config_json_is_understood(tmp_path, fixtures_dir):
    import json

    import torch

    original = torch.load(fixtures_dir / "generator_v3.pt")["config"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(original))
    config = HiFiGANConfig.load(path)
    assert config.generator == preset("v3").generator
    assert config.audio == preset("v3").audio


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("v9")
