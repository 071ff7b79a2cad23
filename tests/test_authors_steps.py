"""Two training steps of our HiFiGANModule against the authors' own training loop, step for step.

`fixtures/authors_steps/steps.pt` was recorded by `make_fixture.py` there,
which runs the loop body of the authors' train.py (github.com/jik876/hifi-gan)
with their models, losses, mel front end and data loader, from weights it
saves, on two batches it saves (narrow discriminators and a 32-channel V1
generator; see that script). Here our module starts from the same weights,
trains on the same batches through Lightning, and must reproduce every loss,
every parameter and buffer (spectral-norm u, v included) and every AdamW
moment after each step bit for bit.

Bit-for-bit holds where the recording was made: the same kind of CPU. On
another CPU torch's kernels (oneDNN convolutions, the FFT) may round
differently even for the authors' own code (see the shared fixtures' README),
so there the comparison falls back to float-rounding tolerances.
"""
from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from hifigan.audio import MelSpectrogram, load_audio
from hifigan.checkpoints import load_state_checked
from hifigan.checkpoints.convert import from_legacy_norm_keys
from hifigan.config import preset, with_generator_channels
from hifigan.data import peak_normalise
from hifigan.losses import FEATURE_WEIGHT, MEL_WEIGHT
from hifigan.training import HiFiGANModule
from hifigan.training.run import StopAtStep

FIXTURE = Path(__file__).parent / "fixtures" / "authors_steps" / "steps.pt"
MODELS = ("generator", "mpd", "msd")


@pytest.fixture(scope="module")
def recorded():
    return torch.load(FIXTURE, weights_only=True)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def same_machine(recorded) -> bool:
    """Whether this CPU is the kind the recording was made on (then results must be bitwise equal)."""
    machine = recorded["machine"]
    return (machine["cpu"] == _cpu_model() and machine["capability"] == torch.backends.cpu.get_cpu_capability()
            and machine["torch"] == str(torch.__version__))


def our_config(recorded):
    c = recorded["config"]
    config = with_generator_channels(preset("v1"), c["upsample_initial_channel"])
    t = config.training
    t.batch_size, t.segment_size = c["batch_size"], c["segment_size"]
    t.learning_rate, t.adam_b1, t.adam_b2, t.lr_decay = c["learning_rate"], c["adam_b1"], c["adam_b2"], c["lr_decay"]
    t.discriminator_channel_divisor = recorded["discriminator_channel_divisor"]
    t.num_workers, t.precision, t.log_every_n_steps = 0, "32", 10**6
    assert config.generator.upsample_rates == c["upsample_rates"]
    assert config.generator.resblock_kernel_sizes == c["resblock_kernel_sizes"]
    return config.validate()


def _digest(tensor: torch.Tensor) -> dict:
    import hashlib

    t = tensor.detach().cpu().contiguous()
    flat = t.reshape(-1)
    index = torch.linspace(0, max(flat.numel() - 1, 0), min(8, flat.numel())).long()
    return {"sha256": hashlib.sha256(t.numpy().tobytes()).hexdigest(), "sum": float(t.double().sum()),
            "samples": flat[index].double().tolist(), "shape": list(t.shape), "tensor": t.clone()}


class _Recorder(pl.Callback):
    """After each optimiser step: the losses, every state-dict tensor and every AdamW moment."""

    def __init__(self) -> None:
        self.steps: list[dict] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if not module.step_completed:
            return
        after = {name: {k: _digest(v) for k, v in getattr(module, name).state_dict().items()} for name in MODELS}
        adam = {}
        for side, optimizer in zip(("generator", "discriminators"), module.optimizers()):
            names = {id(p): n for n, p in module.named_parameters()}
            moments = {}
            for group in optimizer.param_groups:
                for p in group["params"]:
                    state = optimizer.state[p]
                    moments[names[id(p)]] = {"exp_avg": _digest(state["exp_avg"]),
                                             "exp_avg_sq": _digest(state["exp_avg_sq"]), "step": float(state["step"])}
            adam[side] = moments
        self.steps.append({"losses": dict(module._last_losses), "after": after, "adam": adam})


@pytest.fixture(scope="module")
def ours(recorded):
    torch.manual_seed(0)  # our own initialisation is replaced by the recorded weights
    module = HiFiGANModule(our_config(recorded))
    for name in MODELS:
        load_state_checked(getattr(module, name), recorded["initial"][name], f"authors' initial {name}")
    batches = [{"mel": b["x"], "audio": b["y"].unsqueeze(1), "mel_loss": b["mel_spec"], "name": b["files"]}
               for b in recorded["batches"]]
    recorder = _Recorder()
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[StopAtStep(len(batches)), recorder],
    )
    trainer.fit(module, DataLoader(batches, batch_size=None))
    assert len(recorder.steps) == len(batches) == 2
    return recorder.steps


def _authors_names(model: str, digests: dict) -> dict:
    """The authors' state-dict / parameter names (weight_g, weight_orig, ...) as ours."""
    return from_legacy_norm_keys(digests)


def _our_adam_names(recorded_adam: dict) -> dict:
    """Recorded moments keyed by the authors' parameter names -> our module's parameter names."""
    out = {}
    groups: dict[str, dict] = {}
    for name, value in recorded_adam.items():
        prefix, _, rest = name.partition(".") if name.startswith(("mpd.", "msd.")) else ("generator", "", name)
        groups.setdefault(prefix, {})[rest] = value
    for prefix, entries in groups.items():
        for rest, value in from_legacy_norm_keys(entries).items():
            out[f"{prefix}.{rest}"] = value
    return out


def _compare(ours: dict, theirs: dict, what: str, exact: bool, failures: list[str]) -> None:
    assert ours["shape"] == theirs["shape"], what
    if exact:
        if ours["sha256"] != theirs["sha256"]:
            diff = max(abs(a - b) for a, b in zip(ours["samples"], theirs["samples"]))
            failures.append(f"{what}: bytes differ (sum {ours['sum']!r} vs {theirs['sum']!r}, samples {diff:.3g} apart)")
        return
    scale = max(1.0, abs(theirs["sum"]))
    if abs(ours["sum"] - theirs["sum"]) > 1e-4 * scale or any(
            abs(a - b) > 1e-5 + 1e-4 * abs(b) for a, b in zip(ours["samples"], theirs["samples"])):
        failures.append(f"{what}: sum {ours['sum']!r} vs {theirs['sum']!r}")


@pytest.mark.parametrize("step", [0, 1])
def test_losses_equal_the_authors(recorded, ours, step):
    theirs = recorded["steps"][step]["losses"]
    mine = ours[step]["losses"]
    pairs = {
        "loss_disc_all": mine["d_total"], "loss_disc_f": mine["d_mpd"], "loss_disc_s": mine["d_msd"],
        "loss_gen_all": mine["g_total"], "loss_mel": MEL_WEIGHT * mine["mel_l1"],
    }
    combined = {  # sums of two of their terms: ours are logged added (2a + 2b == 2(a + b) exactly)
        ("loss_gen_s", "loss_gen_f"): mine["g_adv"],
        ("loss_fm_s", "loss_fm_f"): FEATURE_WEIGHT * mine["g_fm"],
    }
    exact = same_machine(recorded)
    for name, value in pairs.items():
        if exact:
            assert torch.equal(value, theirs[name]), (name, value.item(), theirs[name].item())
        else:
            torch.testing.assert_close(value, theirs[name], rtol=1e-5, atol=1e-6, msg=name)
    for (a, b), value in combined.items():
        expected = theirs[a] + theirs[b]
        if exact:
            assert torch.equal(value, expected), (a, b, value.item(), expected.item())
        else:
            torch.testing.assert_close(value, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("step", [0, 1])
def test_weights_and_buffers_equal_the_authors_after_each_step(recorded, ours, step):
    exact = same_machine(recorded)
    failures: list[str] = []
    for model in MODELS:
        theirs = _authors_names(model, recorded["steps"][step]["after"][model])
        mine = ours[step]["after"][model]
        assert set(mine) == set(theirs), model
        for key in sorted(theirs):
            _compare(mine[key], theirs[key], f"{model}.{key}", exact, failures)
    assert not failures, f"{len(failures)} tensors differ after step {step + 1}:\n" + "\n".join(failures[:20])


@pytest.mark.parametrize("step", [0, 1])
def test_adamw_moments_equal_the_authors_after_each_step(recorded, ours, step):
    exact = same_machine(recorded)
    failures: list[str] = []
    for side in ("generator", "discriminators"):
        theirs = _our_adam_names(recorded["steps"][step]["adam"][side])
        mine = ours[step]["adam"][side]
        assert set(mine) == set(theirs), side
        for name in sorted(theirs):
            assert mine[name]["step"] == theirs[name]["step"] == step + 1
            for moment in ("exp_avg", "exp_avg_sq"):
                _compare(mine[name][moment], theirs[name][moment], f"{name}.{moment}", exact, failures)
    assert not failures, f"{len(failures)} moments differ after step {step + 1}:\n" + "\n".join(failures[:20])


def test_the_steps_changed_the_weights(recorded, ours):
    """The comparison is not vacuous: both steps moved every model, and the second step's losses differ."""
    for model in MODELS:
        before = from_legacy_norm_keys(recorded["initial"][model])
        after = ours[1]["after"][model]
        moved = [k for k in before if not torch.equal(before[k], after[k]["tensor"])]
        assert len(moved) > len(before) // 2, model
    assert recorded["steps"][0]["losses"]["loss_gen_all"] != recorded["steps"][1]["losses"]["loss_gen_all"]


def test_mels_of_the_batches_equal_the_authors(recorded):
    """Our front end on their crops gives their generator-input mel and loss mel."""
    config = our_config(recorded)
    mel, loss_mel = MelSpectrogram.from_config(config.audio), MelSpectrogram.from_config(config.audio, for_loss=True)
    for batch in recorded["batches"]:
        if same_machine(recorded):
            assert torch.equal(mel(batch["y"]), batch["x"])
            assert torch.equal(loss_mel(batch["y"]), batch["mel_spec"])
        else:  # compare as linear magnitudes relative to the loudest bin (shared fixtures' README)
            for ours_, theirs in ((mel(batch["y"]), batch["x"]), (loss_mel(batch["y"]), batch["mel_spec"])):
                assert float((ours_.exp() - theirs.exp()).abs().max() / theirs.exp().max()) < 1e-5


def test_peak_normalisation_equals_the_authors_loader_bit_for_bit(recorded, tmp_path):
    """Their `normalize(audio / 32768) * 0.95` in float64, then float32: ours on the same 16-bit file."""
    import soundfile

    wav = recorded["wav"]
    path = tmp_path / f"{wav['name']}.wav"
    soundfile.write(path, wav["pcm"].numpy(), wav["rate"], subtype="PCM_16")
    audio = torch.from_numpy(load_audio(path, wav["rate"]).samples)
    normalised = peak_normalise(audio)
    assert normalised.dtype == torch.float32
    assert torch.equal(normalised, wav["normalised"])
    naive = audio * (0.95 / audio.abs().max())  # the float32 way differs from theirs in some samples
    assert not torch.equal(naive, wav["normalised"])
