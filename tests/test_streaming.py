"""Streaming equals full-utterance synthesis (V1/V2/V3, chunk sizes down to one frame), bounded memory."""
import pytest
import torch

from hifigan import DataError, Generator, preset
from hifigan.checkpoints import load_state_checked
from hifigan.config import with_generator_channels
from hifigan.inference import Vocoder
from hifigan.inference.streaming import WindowedStream



@pytest.fixture(scope="module")
def fixture_vocoders(original_state_dicts, fixtures_dir):
    """The V1/V2/V3 generators of the reference fixtures (full size), with their 40-frame mels."""
    out = {}
    for name in ("v1", "v2", "v3"):
        config = preset(name)
        generator = Generator(config.generator)
        load_state_checked(generator, original_state_dicts(f"generator_{name}"), name)
        mel = torch.load(fixtures_dir / f"generator_{name}.pt", weights_only=True)["mel"]
        out[name] = (Vocoder(generator, config, device="cpu"), mel)
    return out


# (preset, frames, chunk sizes): one-frame chunks on V1 use a shorter mel (one generator call per frame),
# still longer than the receptive field so that the stream runs in its steady state.
CASES = [
    ("v1", 30, [1]),
    ("v1", 40, [7, 40]),
    ("v2", 40, [1, 6]),
    ("v3", 40, [1, 3, 25]),
]


@pytest.mark.parametrize("name, frames, chunks", CASES)
def test_stream_equals_full_synthesis(fixture_vocoders, name, frames, chunks):
    vocoder, mels = fixture_vocoders[name]
    mel = mels[1, :, :frames]
    full = vocoder(mel)
    for chunk in chunks:
        pieces = list(vocoder.stream(mel.split(chunk, dim=-1)))
        streamed = torch.cat(pieces)
        assert streamed.shape == full.shape
        assert (streamed - full).abs().max() < 1e-5, (name, chunk)
        assert all(p.numel() % vocoder.hop_length == 0 for p in pieces)


def test_lookahead_and_bounded_memory():
    config = with_generator_channels(preset("v1"), 16)
    torch.manual_seed(0)
    vocoder = Vocoder(Generator(config.generator), config, device="cpu")
    field = vocoder.receptive_field
    mel = torch.randn(80, 300) - 4
    stream = vocoder.streamer()
    emitted, chunk = 0, 4
    pieces = []
    for start in range(0, 300, chunk):
        audio = stream.push(mel[:, start:start + chunk])
        pieces.append(audio)
        emitted += audio.numel() // vocoder.hop_length
        received = min(start + chunk, 300)
        # every frame older than the lookahead is out, nothing newer
        assert emitted == max(0, received - field.right)
        # memory: left context + lookahead + one chunk, whatever the utterance length
        assert stream.buffered_frames <= field.left + field.right + chunk
    pieces.append(stream.flush())
    torch.testing.assert_close(torch.cat(pieces), vocoder(mel), atol=1e-5, rtol=0)
    assert stream.latency_frames == field.right
    assert abs(vocoder.latency_ms - field.right * 256 / 22050 * 1000) < 1e-9


def test_stream_of_short_utterances_and_empty_chunks():
    config = with_generator_channels(preset("v3"), 32)
    torch.manual_seed(1)
    vocoder = Vocoder(Generator(config.generator), config, device="cpu")
    for frames in (1, 2, 5):
        mel = torch.randn(80, frames) - 4
        chunks = [mel[:, :1], mel[:, 1:1], mel[:, 1:]]  # includes an empty chunk
        torch.testing.assert_close(torch.cat(list(vocoder.stream(chunks))), vocoder(mel), atol=1e-5, rtol=0)
    assert list(vocoder.stream([])) == []
    with pytest.raises(DataError, match="bands"):
        list(vocoder.stream([torch.zeros(70, 4)]))


def test_windowed_stream_is_exact_for_an_aligned_local_operator():
    """The generic machinery, on a moving sum with asymmetric context and window alignment."""
    kernel = torch.arange(1.0, 8.0)  # output t sees inputs t-2 .. t+4

    def op(x):
        padded = torch.nn.functional.pad(x[None, None], (2, 4))
        return torch.nn.functional.conv1d(padded, kernel.flip(0)[None, None])[0, 0]

    signal = torch.randn(101)
    for chunk in (1, 3, 10):
        stream = WindowedStream(op, left=2, right=4, align=5)
        parts = [stream.push(signal[i:i + chunk]) for i in range(0, 101, chunk)]
        parts.append(stream.flush())
        torch.testing.assert_close(torch.cat(parts), op(signal))
    with pytest.raises(RuntimeError, match="flushed"):
        stream.push(signal[:3])
