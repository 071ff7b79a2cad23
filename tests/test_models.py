"""The models reproduce the authors' code exactly, with the paper's parameter counts."""
import json

import pytest
import torch

from hifigan import (
    CheckpointError,
    ConfigError,
    Generator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    load_discriminators,
    load_generator,
    preset,
    save_generator,
)
from hifigan.losses import FEATURE_WEIGHT


def _count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name, expected", [("v1", 13_926_017), ("v2", 925_985), ("v3", 1_462_273)])
def test_generator_parameter_counts_with_weight_norm_folded(name, expected):
    config = preset(name)
    generator = Generator(config.generator).fold_weight_norm()
    assert not generator.has_weight_norm
    assert _count(generator) == expected


def test_discriminator_parameter_counts():
    assert _count(MultiPeriodDiscriminator()) == 41_105_770
    assert _count(MultiScaleDiscriminator()) == 29_618_821


@pytest.mark.parametrize("name", ["v1", "v2", "v3"])
def test_output_length_is_frames_times_hop(name):
    config = preset(name)
    generator = Generator(config.generator).eval()
    with torch.no_grad():
        audio = generator(torch.randn(1, 80, 7))
    assert audio.shape == (1, 1, 7 * 256)
    assert audio.abs().max() <= 1.0


@pytest.mark.parametrize("name", ["v1", "v2", "v3"])
@pytest.mark.parametrize("fold", [False, True])
def test_generator_matches_original(tmp_path, fixtures_dir, original_state_dicts, name, fold):
    fixture = torch.load(fixtures_dir / f"generator_{name}.pt")
    path = tmp_path / "g_00000000"
    torch.save({"generator": original_state_dicts(f"generator_{name}")}, path)
    generator = load_generator(path, config=name, fold_weight_norm=fold)
    assert generator.has_weight_norm == (not fold)
    assert not generator.training
    with torch.no_grad():
        audio = generator(fixture["mel"])
    torch.testing.assert_close(audio, fixture["audio"], rtol=1e-4, atol=1e-5)


def test_weight_norm_folding_keeps_output(tiny_config):
    generator = Generator(tiny_config.generator).eval()
    mel = torch.randn(2, 80, 9)
    with torch.no_grad():
        before = generator(mel)
        after = generator.fold_weight_norm()(mel)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


def test_config_found_from_config_json_and_from_shapes(tmp_path, fixtures_dir, original_state_dicts):
    fixture = torch.load(fixtures_dir / "generator_v2.pt")
    torch.save({"generator": original_state_dicts("generator_v2")}, tmp_path / "g_1")
    # no config.json: the weights fit only the v2 preset
    _, config = load_generator(tmp_path / "g_1", return_config=True)
    assert config.generator == preset("v2").generator
    (tmp_path / "config.json").write_text(json.dumps(fixture["config"]))
    _, config = load_generator(tmp_path / "g_1", return_config=True)
    assert config.generator.upsample_initial_channel == 128


def test_mismatching_checkpoint_names_layer_and_shapes(tmp_path, original_state_dicts):
    torch.save({"generator": original_state_dicts("generator_v2")}, tmp_path / "g_1")
    with pytest.raises(CheckpointError, match=r"conv_pre.bias.*\(128,\).*\(512,\)"):
        load_generator(tmp_path / "g_1", config="v1")


def test_unreadable_and_foreign_checkpoints(tmp_path):
    bad = tmp_path / "g_bad"
    bad.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="g_bad"):
        load_generator(bad)
    torch.save({"weights": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a generator checkpoint"):
        load_generator(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_generator(tmp_path / "missing.pt")


def test_no_config_and_no_matching_preset(tmp_path, tiny_config):
    generator = Generator(tiny_config.generator)
    torch.save({"generator": generator.state_dict()}, tmp_path / "g_1")
    with pytest.raises(ConfigError, match="fit none of the presets"):
        load_generator(tmp_path / "g_1")


def test_our_format_carries_its_config(tmp_path, tiny_config):
    generator = Generator(tiny_config.generator)
    save_generator(tmp_path / "gen.pt", generator.state_dict(), tiny_config)
    loaded, config = load_generator(tmp_path / "gen.pt", return_config=True)
    assert config == tiny_config
    mel = torch.randn(1, 80, 5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), generator.eval()(mel), rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def discriminator_fixture(fixtures_dir):
    return torch.load(fixtures_dir / "discriminators.pt")


@pytest.fixture(scope="module")
def loaded_discriminators(tmp_path_factory, original_state_dicts):
    path = tmp_path_factory.mktemp("do") / "do_00000000"
    torch.save({"mpd": original_state_dicts("mpd"), "msd": original_state_dicts("msd"),
                "steps": 0, "epoch": 0}, path)
    return dict(zip(("mpd", "msd"), load_discriminators(path)))


def _sampled(tensor):
    flat = tensor.flatten()
    return flat[torch.linspace(0, flat.numel() - 1, 256).long()]


@pytest.mark.parametrize("name", ["mpd", "msd"])
def test_discriminators_match_original(discriminator_fixture, loaded_discriminators, name):
    fixture = discriminator_fixture[name]
    with torch.no_grad():
        real, fake, fmap_r, fmap_g = loaded_discriminators[name](
            discriminator_fixture["y"], discriminator_fixture["y_hat"]
        )
    for ours, ref in zip(real + fake, fixture["y_d_rs"] + fixture["y_d_gs"]):
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
    for ours_list, ref_list in ((fmap_r, fixture["fmap_rs"]), (fmap_g, fixture["fmap_gs"])):
        assert len(ours_list) == len(ref_list)
        for ours_layers, ref_layers in zip(ours_list, ref_list):
            assert len(ours_layers) == len(ref_layers)
            for ours, ref in zip(ours_layers, ref_layers):
                assert list(ours.shape) == list(ref["shape"])
                torch.testing.assert_close(_sampled(ours), ref["samples"], rtol=1e-4, atol=1e-5)
                torch.testing.assert_close(ours.abs().mean(), ref["abs_mean"], rtol=1e-4, atol=1e-6)
    losses = discriminator_fixture[f"{name}_losses"]
    d_loss, _, _ = discriminator_loss(real, fake)
    g_loss, _ = generator_adversarial_loss(fake)
    f_loss = FEATURE_WEIGHT * feature_matching_loss(fmap_r, fmap_g)
    torch.testing.assert_close(d_loss, losses["discriminator"], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(g_loss, losses["generator"], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(f_loss, losses["feature"], rtol=1e-4, atol=1e-6)


def test_discriminator_checkpoint_must_fit(tmp_path, original_state_dicts):
    path = tmp_path / "do_1"
    torch.save({"mpd": original_state_dicts("mpd"), "msd": original_state_dicts("msd")}, path)
    config = preset("v1")
    config.discriminator.periods = [2, 3, 5]
    with pytest.raises(CheckpointError, match="not in the model"):
        load_discriminators(path, config=config)


def test_folding_a_copy_leaves_the_original_and_works_in_inference_mode(tiny_config):
    import copy

    generator = Generator(tiny_config.generator).eval()
    mel = torch.randn(1, 80, 6)
    with torch.no_grad():
        expected = generator(mel)
    with torch.inference_mode():
        folded = copy.deepcopy(generator).fold_weight_norm()
        torch.testing.assert_close(folded(mel), expected, rtol=1e-5, atol=1e-6)
    assert generator.has_weight_norm and not folded.has_weight_norm
    with torch.no_grad():
        torch.testing.assert_close(generator(mel), expected, rtol=0, atol=0)


# ---- spectral norm: the authors' power iteration ------------------------------------------

def _old_hook_conv(conv):
    """A copy of `conv` under the authors' `torch.nn.utils.spectral_norm` (the old hook)."""
    import copy

    plain = copy.deepcopy(conv)
    return torch.nn.utils.spectral_norm(plain)


def test_spectral_norm_runs_the_authors_power_iteration_bit_for_bit():
    from hifigan.models import spectral_norm

    torch.manual_seed(3)
    conv = torch.nn.Conv1d(8, 16, 41, 2, groups=4, padding=20)
    old = _old_hook_conv(conv)
    ours = spectral_norm(torch.nn.Conv1d(8, 16, 41, 2, groups=4, padding=20))
    with torch.no_grad():  # the authors' unconverged u, v and weights in both
        ours.parametrizations.weight.original.copy_(old.weight_orig)
        ours.bias.copy_(old.bias)
        ours.parametrizations.weight[0]._u.copy_(old.weight_u)
        ours.parametrizations.weight[0]._v.copy_(old.weight_v)
    x = torch.randn(2, 8, 300)
    for _ in range(3):  # training mode: one power-iteration step per forward
        assert torch.equal(ours(x), old(x))
        assert torch.equal(ours.parametrizations.weight[0]._u, old.weight_u)
        assert torch.equal(ours.parametrizations.weight[0]._v, old.weight_v)
    ours.eval(), old.eval()
    assert torch.equal(ours(x), old(x))  # eval mode: the stored u, v, no update
    assert torch.equal(ours.parametrizations.weight[0]._u, old.weight_u)


def test_spectral_norm_order_matters_from_fresh_vectors():
    """torch's newer parametrization (u first) gives another first-step sigma than the authors' hook."""
    from torch.nn.utils.parametrizations import spectral_norm as torch_parametrization

    torch.manual_seed(0)
    old = _old_hook_conv(torch.nn.Conv1d(1, 128, 15, 1, padding=7))
    new = torch_parametrization(torch.nn.Conv1d(1, 128, 15, 1, padding=7))
    with torch.no_grad():
        new.parametrizations.weight.original.copy_(old.weight_orig)
        new.parametrizations.weight[0]._u.copy_(old.weight_u)
        new.parametrizations.weight[0]._v.copy_(old.weight_v)
        x = torch.zeros(1, 1, 20)
        old(x)
        w_new = new.weight
    w = old.weight_orig
    sigma_old = float(torch.dot(old.weight_u, w.reshape(128, -1) @ old.weight_v))
    sigma_new = float(w.flatten()[0] / w_new.flatten()[0])
    assert abs(sigma_new - sigma_old) / sigma_old > 0.01  # 7% here: the reason for our own


def test_spectral_norm_keeps_the_parametrization_keys_and_loads_old_checkpoints():
    from torch.nn.utils.parametrizations import spectral_norm as torch_parametrization

    msd = MultiScaleDiscriminator(channel_divisor=16)
    keys = [k for k in msd.state_dict() if k.startswith("discriminators.0.convs.0.")]
    assert sorted(keys) == sorted([
        "discriminators.0.convs.0.bias", "discriminators.0.convs.0.parametrizations.weight.original",
        "discriminators.0.convs.0.parametrizations.weight.0._u",
        "discriminators.0.convs.0.parametrizations.weight.0._v"])
    # a checkpoint written with torch's parametrization (our layout until now) loads as it is
    conv = torch_parametrization(torch.nn.Conv1d(1, 8, 15, 1, padding=7))
    target = msd.discriminators[0].convs[0]
    target.load_state_dict(conv.state_dict())
    conv.eval(), target.eval()
    x = torch.randn(1, 1, 100)
    with torch.no_grad():
        assert torch.equal(target(x), conv(x))  # eval: u^T W v from the stored vectors in both


def test_fresh_spectral_norm_vectors_are_not_warmed_up():
    """As the old hook: random unit u, v drawn at registration, no power iterations before training."""
    from hifigan.models import spectral_norm

    torch.manual_seed(5)
    old = torch.nn.utils.spectral_norm(torch.nn.Conv1d(4, 8, 5))
    torch.manual_seed(5)
    ours = spectral_norm(torch.nn.Conv1d(4, 8, 5))
    assert torch.equal(ours.parametrizations.weight.original, old.weight_orig)
    assert torch.equal(ours.parametrizations.weight[0]._u, old.weight_u)
    assert torch.equal(ours.parametrizations.weight[0]._v, old.weight_v)


# ---- the discriminator registry and NVIDIA's pooling ---------------------------------------

def test_registry_builds_the_discriminators_everywhere(tmp_path, original_state_dicts):
    from hifigan.models import DISCRIMINATORS, build_discriminators
    from hifigan.training import HiFiGANModule

    assert list(DISCRIMINATORS) == ["mpd", "msd"]
    built = build_discriminators(preset("v1").discriminator, channel_divisor=16)
    assert isinstance(built["mpd"], MultiPeriodDiscriminator) and isinstance(built["msd"], MultiScaleDiscriminator)
    config = preset("v1")
    config.training.discriminator_channel_divisor = 16
    config.generator.upsample_initial_channel = 16
    module = HiFiGANModule(config)
    assert module.discriminator_names == ["mpd", "msd"]
    prefixes = {k.split(".", 1)[0] for k in module.state_dict()}
    assert {"generator", "mpd", "msd"} <= prefixes  # the checkpoint keys are unchanged
    path = tmp_path / "do_1"
    torch.save({"mpd": original_state_dicts("mpd"), "msd": original_state_dicts("msd")}, path)
    loaded = load_discriminators(path)
    assert [type(m) for m in loaded] == [MultiPeriodDiscriminator, MultiScaleDiscriminator]


def test_scale_pool_padding_is_a_setting_and_nvidias_recipe_uses_1():
    from hifigan.config import ConfigError as _ConfigError
    from hifigan.models import build_discriminators

    assert preset("v1").discriminator.scale_pool_padding == 2  # the authors' AvgPool1d(4, 2, padding=2)
    nvidia = preset("v1-nvidia").discriminator
    assert nvidia.scale_pool_padding == 1  # NVIDIA's hifigan/models.py: AvgPool1d(4, 2, padding=1)
    msd = build_discriminators(nvidia, channel_divisor=16)["msd"]
    assert [pool.padding for pool in msd.meanpools] == [(1,), (1,)]
    authors = build_discriminators(preset("v1").discriminator, channel_divisor=16)["msd"]
    authors.load_state_dict(msd.state_dict())  # the same weights: pooling has none
    authors.eval(), msd.eval()
    y = torch.randn(1, 1, 1001)
    with torch.no_grad():
        real_a, _, _, _ = authors(y, y)
        real_n, _, _, _ = msd(y, y)
    assert torch.equal(real_a[0], real_n[0])  # scale 0 is not pooled
    assert real_a[1].shape != real_n[1].shape or not torch.equal(real_a[1], real_n[1])
    config = preset("v1")
    config.discriminator.scale_pool_padding = 3
    with pytest.raises(_ConfigError, match="scale_pool_padding"):
        config.validate()
