"""Vocoder: batched synthesis with per-item lengths equals unbatched synthesis, input checks."""
import numpy as np
import pytest
import torch

from hifigan import DataError, Generator, preset, save_generator
from hifigan.config import with_generator_channels
from hifigan.inference import Vocoder
from hifigan.inference.receptive_field import receptive_field



def make_vocoder(config, seed=0, **options):
    torch.manual_seed(seed)
    generator = Generator(config.generator, n_mels=config.audio.n_mels)
    return Vocoder(generator, config, device="cpu", **options)


def random_mel(frames, seed, n_mels=80):
    return torch.randn(n_mels, frames, generator=torch.Generator().manual_seed(seed)) - 4.0


@pytest.fixture(scope="module")
def vocoder():
    return make_vocoder(with_generator_channels(preset("v1"), 16))


def test_defaults_fold_weight_norm_float32_on_cpu(vocoder):
    assert not vocoder.generator.has_weight_norm
    assert vocoder.dtype == torch.float32 and vocoder.device.type == "cpu"
    assert not any(p.requires_grad for p in vocoder.generator.parameters())


def test_single_and_batch_shapes(vocoder):
    mel = random_mel(9, 1)
    audio = vocoder(mel)
    assert audio.shape == (9 * 256,) and audio.dtype == torch.float32
    batch = vocoder(torch.stack([mel, mel]))
    assert batch.shape == (2, 9 * 256)
    torch.testing.assert_close(batch[0], audio, atol=1e-6, rtol=0)
    assert torch.equal(vocoder(mel.numpy()), audio)


def test_batched_with_lengths_equals_each_item_alone(vocoder):
    field = vocoder.receptive_field
    # lengths: full, one frame short, shorter than the receptive field, a single frame,
    # and one whose tail window starts exactly at 0
    lengths = [60, 59, 17, 1, field.left + field.right]
    mels = [random_mel(n, seed) for seed, n in enumerate(lengths)]
    batch = torch.zeros(len(mels), 80, max(lengths))
    for i, m in enumerate(mels):
        batch[i, :, : m.shape[-1]] = m
    out = vocoder(batch, lengths=lengths)
    assert isinstance(out, list) and [a.numel() for a in out] == [n * 256 for n in lengths]
    for mel, audio in zip(mels, out):
        torch.testing.assert_close(audio, vocoder(mel), atol=1e-5, rtol=0)
    # the naive way (slice the padded batch) is NOT exact for the short items: the fix-up matters
    naive = vocoder(batch)
    assert (naive[1, : 59 * 256] - vocoder(mels[1])).abs().max() > 1e-4
    # a list of mels is the same call
    as_list = vocoder(mels)
    for a, b in zip(as_list, out):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    # lengths as a tensor
    out_tensor_lengths = vocoder(batch, lengths=torch.tensor(lengths))
    torch.testing.assert_close(out_tensor_lengths[2], out[2], atol=1e-6, rtol=0)


def test_receptive_field_matches_the_measured_dependency():
    """Computed lookahead/left context = which output frames a change to one mel frame reaches."""
    for name in ("v1", "v2", "v3"):
        config = with_generator_channels(preset(name), 16)
        field = receptive_field(config.generator)
        torch.manual_seed(0)
        generator = Generator(config.generator).fold_weight_norm().double().eval()
        for module in generator.modules():  # positive weights: no accidental cancellation
            if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                torch.nn.init.uniform_(module.weight, 0.5, 1.0)
        frames, probe = 2 * field.frames + 4, field.frames + 2
        mel = torch.randn(1, 80, frames, dtype=torch.float64) * 0.01
        changed = mel.clone()
        changed[0, :, probe] += 1e-3
        outputs = []
        hook = generator.conv_post.register_forward_hook(lambda m, i, o: outputs.append(o))  # before tanh
        with torch.inference_mode():
            generator(mel), generator(changed)
        hook.remove()
        per_frame = (outputs[0] - outputs[1]).abs()[0, 0].reshape(frames, -1).amax(dim=1)
        reached = per_frame.nonzero().flatten()
        assert probe - int(reached.min()) == field.right, name  # lookahead
        assert int(reached.max()) - probe == field.left, name
    assert receptive_field(preset("v1").generator).right == 13
    assert receptive_field(preset("v3").generator).right == 11


def test_resynthesize_resamples_and_matches_mel_path(vocoder):
    t = np.arange(16000, dtype=np.float32) / 16000
    audio16k = 0.5 * np.sin(2 * np.pi * 220 * t)
    out = vocoder.resynthesize(audio16k, sampling_rate=16000)
    mel = vocoder.mel(audio16k, sampling_rate=16000)
    assert mel.shape == (80, 22050 // 256)
    torch.testing.assert_close(out, vocoder(mel))
    with pytest.raises(DataError, match="too short"):
        vocoder.resynthesize(np.zeros(100, dtype=np.float32))


@pytest.mark.parametrize(
    "bad, message",
    [
        (torch.zeros(60, 10), "60 bands"),
        (torch.zeros(10), "expected a mel shaped"),
        (torch.full((80, 5), float("nan")), "NaN or infinite"),
        (torch.tensor([[float("inf")]]).expand(80, 3).clone(), "NaN or infinite"),
        (torch.zeros(80, 0), "no frames"),
    ],
)
def test_bad_mels_get_clear_errors(vocoder, bad, message):
    with pytest.raises(DataError, match=message):
        vocoder(bad)


def test_bad_lengths(vocoder):
    batch = torch.zeros(2, 80, 10)
    with pytest.raises(DataError, match="outside 1..10"):
        vocoder(batch, lengths=[10, 11])
    with pytest.raises(DataError, match="2 mels"):
        vocoder(batch, lengths=[10])


def test_from_checkpoint_round_trip(tmp_path, tiny_config):
    torch.manual_seed(3)
    generator = Generator(tiny_config.generator)
    path = save_generator(tmp_path / "g.pt", generator.state_dict(), tiny_config)
    vocoder = Vocoder.from_checkpoint(path, device="cpu")
    mel = random_mel(12, 5)
    with torch.inference_mode():
        expected = generator.eval()(mel[None])[0, 0]
    torch.testing.assert_close(vocoder(mel), expected, atol=1e-6, rtol=1e-5)
    assert vocoder.sampling_rate == tiny_config.audio.sampling_rate


def test_reduced_precision_runs_and_stays_close(vocoder):
    """bfloat16 (CPU here; float16/bfloat16 on GPU take the same path) returns float32 audio near float32's."""
    config = vocoder.config
    full, half = (make_vocoder(config, seed=4, dtype=dtype) for dtype in ("float32", "bfloat16"))
    assert half.dtype == torch.bfloat16 and next(half.generator.parameters()).dtype == torch.bfloat16
    mel = random_mel(20, 9)
    reference, out = full(mel), half(mel)
    assert out.dtype == torch.float32
    assert float((out - reference).norm() / reference.norm()) < 0.05


def test_cpu_default_is_the_fast_exact_path(tiny_config):
    from hifigan import Generator, Vocoder

    generator = Generator(tiny_config.generator)
    fast = Vocoder(generator, tiny_config, device="cpu")
    eager = Vocoder(Generator(tiny_config.generator), tiny_config, device="cpu", backend="torch")
    eager.generator.load_state_dict(fast.generator.state_dict())
    assert fast.backend == "fast" and eager.backend == "torch"
    mel = torch.randn(2, 80, 23) - 5
    torch.testing.assert_close(fast(mel), eager(mel), rtol=0, atol=1e-5)


def test_fast_backend_refuses_what_it_cannot_run(tiny_config):
    from hifigan import ConfigError, Generator, Vocoder

    with pytest.raises(ConfigError, match="fast backend runs on CPU"):
        Vocoder(Generator(tiny_config.generator), tiny_config, device="cpu", dtype="float16", backend="fast")
