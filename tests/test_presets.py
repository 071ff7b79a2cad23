"""Every shipped preset (the paper's, NVIDIA's, other toolkits' sample rates) builds, synthesises
exactly frames x hop samples, and trains a step; the ones that describe a source recipe cite it."""
from __future__ import annotations

import pytest
import torch

from hifigan import Generator, MelSpectrogram
from hifigan.config import preset, preset_names, preset_path, with_generator_channels
from hifigan.training import HiFiGANModule

from test_train_module import fit, synthetic_items


@pytest.mark.parametrize("name", preset_names())
def test_preset_synthesises_frames_times_hop_and_trains_a_step(name):
    config = with_generator_channels(preset(name), 32)
    assert config.name == name
    hop = config.audio.hop_length
    generator = Generator(config.generator, n_mels=config.audio.n_mels).eval()
    with torch.no_grad():
        for frames in (1, 7, 20):
            audio = generator(torch.randn(2, config.audio.n_mels, frames))
            assert audio.shape == (2, 1, frames * hop)
    # its mel of a clip has the frames the generator turns back into the clip's length
    mel = MelSpectrogram.from_config(config.audio)(torch.randn(hop * 12 + 5) * 0.1)
    assert mel.shape[-1] == config.audio.frames(hop * 12 + 5) == 12
    t = config.training
    t.segment_size, t.batch_size, t.num_workers, t.discriminator_channel_divisor = 8 * hop, 1, 0, 16
    t.max_steps, t.precision = None, "32"
    module = HiFiGANModule(config.validate())
    before = [p.detach().clone() for p in module.generator.parameters()]
    trainer = fit(module, synthetic_items(config, 1), per_device=1, steps=1)
    assert trainer.global_step >= 1
    assert any(not torch.equal(a, b) for a, b in zip(before, module.generator.parameters()))


def test_toolkit_presets_cite_their_source():
    for name, source in (("v1-16k", "SpeechBrain"), ("v1-24k", "ParallelWaveGAN"), ("v1-44k", "NeMo"),
                         ("v1-48k", "AudioLDM 2"), ("v1-dle", "DeepLearningExamples")):
        assert source in preset_path(name).read_text(), name
