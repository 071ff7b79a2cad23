"""Models from and to the Hugging Face Hub (hifigan.hub), tested offline.

Each test builds a local Hub cache in huggingface_hub's own layout
(models--owner--name/{blobs,snapshots/<commit>,refs/main}) and points the
library at it with HF_HUB_CACHE and HF_HUB_OFFLINE=1; both are read when
huggingface_hub is imported, so its constants are patched too. Every HTTP
request huggingface_hub would make goes to an in-process mock transport that
records it: the tests assert that none was attempted (or, for the unknown-repo
case, answer it themselves). Uploads are checked by the folder handed to
HfApi.upload_folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import huggingface_hub
from huggingface_hub import constants as hf_constants
from huggingface_hub.utils import _http as hf_http

from hifigan import hub, load_generator, save_generator
from hifigan.checkpoints.formats.safetensors import read_tensors
from hifigan.cli.main import main
from hifigan.errors import CheckpointError, ConfigError
from hifigan.inference import Vocoder
from hifigan.inference.export import export_safetensors
from hifigan.models import Generator

INTEROP = Path(__file__).parent / "fixtures" / "interop"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
HTTP = getattr(hf_http, "httpx2", None) or getattr(hf_http, "httpx")  # the HTTP client huggingface_hub uses


class HubCache:
    """A Hub cache folder in huggingface_hub's layout, and the requests anyone tried to send."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []

    def add(self, repo_id: str, files: dict[str, Path], commit: str = COMMIT, ref: str = "main") -> Path:
        """Cache `files` (name in the repo -> local file) as `repo_id` at `commit`; `refs/<ref>` points at it."""
        repo = self.root / ("models--" + repo_id.replace("/", "--"))
        snapshot = repo / "snapshots" / commit
        (repo / "blobs").mkdir(parents=True, exist_ok=True)
        snapshot.mkdir(parents=True, exist_ok=True)
        for name, source in files.items():
            data = Path(source).read_bytes()
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            (snapshot / name).symlink_to(Path("..") / ".." / "blobs" / blob.name)
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)  # no newline, as huggingface_hub writes it
        return snapshot


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> HubCache:
    cache = HubCache(tmp_path / "hf-cache")
    cache.root.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache.root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache.root))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    use_transport(cache, lambda request: HTTP.Response(599))
    yield cache
    hf_http.set_client_factory(hf_http.default_client_factory)


def use_transport(cache: HubCache, answer) -> None:
    """Send huggingface_hub's requests to `answer` (recorded), never to a network."""
    def handler(request):
        cache.requests.append(f"{request.method} {request.url}")
        return answer(request)

    hf_http.set_client_factory(lambda: HTTP.Client(
        transport=HTTP.MockTransport(handler), event_hooks={"request": [hf_http.hf_request_event_hook]}))


@pytest.fixture
def tiny_vocoder(tiny_config) -> Vocoder:
    torch.manual_seed(0)
    return Vocoder(Generator(tiny_config.generator, n_mels=tiny_config.audio.n_mels), tiny_config, device="cpu")


def make_mel(frames: int = 24, seed: int = 1) -> torch.Tensor:
    return torch.randn(80, frames, generator=torch.Generator().manual_seed(seed)) - 5.0


# ---- loading each layout by name -----------------------------------------------------------

def test_our_layout_loads_by_name_and_round_trips_bitwise(hub_cache, tiny_vocoder, tmp_path):
    folder = tiny_vocoder.save_pretrained(tmp_path / "saved", training_data="nothing: random weights")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    state, metadata = read_tensors(folder / "model.safetensors")
    assert not any("parametrizations" in key for key in state)  # folded: plain weights only
    assert all(t.dtype == torch.float32 for t in state.values())
    assert json.loads(metadata["hifigan_config"]) == tiny_vocoder.config.to_dict()
    assert json.loads((folder / "config.json").read_text()) == tiny_vocoder.config.to_dict()
    hub_cache.add("tester/tiny-hifigan", {p.name: p for p in folder.iterdir()})

    loaded = Vocoder.from_pretrained("tester/tiny-hifigan", device="cpu")
    assert loaded.config.to_dict() == tiny_vocoder.config.to_dict()
    mel = make_mel()
    assert torch.equal(loaded(mel), tiny_vocoder(mel))
    assert torch.equal(loaded(mel), Vocoder.from_checkpoint(folder, device="cpu")(mel))
    eager = Vocoder.from_pretrained("tester/tiny-hifigan", device="cpu", backend="torch")
    assert torch.equal(eager(mel), Vocoder(tiny_vocoder.generator, tiny_vocoder.config, backend="torch")(mel))
    # a commit hash as the revision
    assert torch.equal(Vocoder.from_pretrained(f"tester/tiny-hifigan@{COMMIT}", device="cpu")(mel), loaded(mel))
    assert hub_cache.requests == []


def test_speechbrain_layout_loads_by_name_as_the_files_do(hub_cache):
    fixture = INTEROP / "speechbrain"
    hub_cache.add("speechbrain/tts-hifigan-ljspeech",
                  {name: fixture / name for name in ("hyperparams.yaml", "generator.ckpt")})
    ref = torch.load(fixture / "reference.pt", weights_only=True)
    mel = ref["mel_input"][0]
    by_name = Vocoder.from_pretrained("speechbrain/tts-hifigan-ljspeech", device="cpu", toolkit_padding=True)
    direct = Vocoder.from_checkpoint(fixture / "generator.ckpt", device="cpu", toolkit_padding=True)
    assert by_name.config.to_dict() == direct.config.to_dict()
    assert by_name.config.generator.conv_padding_mode == "reflect"
    assert torch.equal(by_name(mel), direct(mel))
    audio = by_name(mel)  # and that is SpeechBrain's own output
    assert float((audio - ref["audio_output"].reshape(-1)).abs().max() / ref["audio_output"].abs().max()) < 1e-4
    assert hub_cache.requests == []


def test_nemo_layout_loads_by_name_as_the_file_does(hub_cache):
    fixture = INTEROP / "nemo" / "hifigan.nemo"
    hub_cache.add("nvidia/tts_hifigan", {"tts_hifigan.nemo": fixture})
    ref = torch.load(INTEROP / "nemo" / "reference.pt", weights_only=True)
    mel = ref["mel_input"][0]
    by_name = Vocoder.from_pretrained("nvidia/tts_hifigan", device="cpu")
    direct = Vocoder.from_checkpoint(fixture, device="cpu")
    assert by_name.config.to_dict() == direct.config.to_dict() and by_name.config.audio.frontend == "nemo"
    assert torch.equal(by_name(mel), direct(mel))
    audio = by_name(mel)
    assert float((audio - ref["audio_output"].reshape(-1)).abs().max() / ref["audio_output"].abs().max()) < 1e-4
    assert hub_cache.requests == []


# ---- errors: one line each -------------------------------------------------------------------

def test_offline_and_not_cached_is_one_line_error(hub_cache):
    with pytest.raises(CheckpointError) as err:
        Vocoder.from_pretrained("tester/not-cached", device="cpu")
    message = str(err.value)
    assert "\n" not in message and "tester/not-cached" in message
    assert "HF_HUB_OFFLINE is set" in message and str(hub_cache.root) in message
    assert "hf download tester/not-cached" in message
    assert hub_cache.requests == []


def test_repo_without_a_model_is_one_line_error(hub_cache, tmp_path):
    (tmp_path / "README.md").write_text("a dataset card")
    hub_cache.add("tester/just-a-card", {"README.md": tmp_path / "README.md"})
    with pytest.raises(CheckpointError, match=r"^Hugging Face Hub repo tester/just-a-card holds no model this "
                                              r"package reads; expected config.json \+ model.safetensors"):
        Vocoder.from_pretrained("tester/just-a-card")
    assert hub_cache.requests == []


def test_unknown_repo_is_one_line_error(hub_cache, monkeypatch):
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)  # online, but the Hub is this mock
    use_transport(hub_cache, lambda request: HTTP.Response(
        404, headers={"X-Error-Code": "RepoNotFound"}, json={"error": "Repository not found"}, request=request))
    with pytest.raises(CheckpointError) as err:
        Vocoder.from_pretrained("tester/no-such-repo", device="cpu")
    assert str(err.value) == "no Hugging Face Hub repo tester/no-such-repo (if it is private, log in with " \
                             "`hf auth login`)"
    assert hub_cache.requests and all("tester/no-such-repo" in r for r in hub_cache.requests)


def test_missing_extra_names_the_pip_command(monkeypatch, tiny_vocoder, tmp_path):
    export_safetensors(tiny_vocoder.generator, tiny_vocoder.config, tmp_path / "model.safetensors")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(ConfigError, match=r'^models on the Hugging Face Hub need the hub extra: '
                                          r'pip install "hifigan\[hub\]"$'):
        Vocoder.from_pretrained("tester/tiny-hifigan")
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(CheckpointError, match=r'model.safetensors: reading .safetensors files needs the hub '
                                              r'extra: pip install "hifigan\[hub\]"'):
        load_generator(tmp_path / "model.safetensors")
    with pytest.raises(ConfigError, match=r'pip install "hifigan\[hub\]"'):
        export_safetensors(tiny_vocoder.generator, tiny_vocoder.config, tmp_path / "other.safetensors")


def test_registry_names_work_offline_without_the_hub_package(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    vocoder = Vocoder.from_pretrained("lj-v1", device="cpu")
    assert vocoder.config.name == "lj-v1" and vocoder(make_mel(4)).shape == (4 * 256,)
    with pytest.raises(ConfigError, match=r"unknown model 'lj-v2'; known models: universal-v1, lj-v1 .*"
                                          r"or a Hugging Face Hub repo as owner/name\[@revision\]"):
        Vocoder.from_pretrained("lj-v2")
    with pytest.raises(ConfigError, match="weights= goes with a registered model"):
        Vocoder.from_pretrained("tester/tiny-hifigan", weights="g_00000001")


def test_repo_ids():
    assert hub.parse_repo_id("speechbrain/tts-hifigan-ljspeech") == ("speechbrain/tts-hifigan-ljspeech", None)
    assert hub.parse_repo_id("me/model.v2@refs/pr/1") == ("me/model.v2", "refs/pr/1")
    for text in ("lj-v1", "a/b/c", "/abs/path", "./runs/x", "me/", "me/x@"):
        assert not hub.is_repo_id(text), text


# ---- saving and pushing --------------------------------------------------------------------------

def make_run(run_dir: Path, vocoder: Vocoder) -> Path:
    """A finished run directory as train() leaves it, with an evaluation beside it."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(vocoder.config.to_dict(), sort_keys=False))
    save_generator(run_dir / "generator.pt", vocoder.generator.state_dict(), vocoder.config)
    rows = [{"step": 500, "epoch": 1, "mel_l1": 0.91, "utterances": 3, "time": 1.0},
            {"step": 1234, "epoch": 5, "mel_l1": 0.4321, "utterances": 3, "time": 2.0}]
    (run_dir / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "summary.json").write_text(json.dumps({"step": 1234, "epoch": 5, "validation": rows}))
    (run_dir / "evaluation").mkdir()
    score = lambda mean, ci: {"mean": mean, "ci95": ci, "n": 3, "skipped": 0}
    (run_dir / "evaluation" / "metrics.json").write_text(json.dumps({
        "settings": {"model": str(run_dir), "note": ""},
        "summary": {"hifigan": {"mel_l1": score(0.5301, 0.012), "pesq": score(2.891, 0.1)},
                    "griffin-lim": {"mel_l1": score(0.151, 0.002), "pesq": score(2.64, None)}},
        "files": [{}, {}, {}],
    }))
    return run_dir


def test_saving_from_a_run_writes_its_card(tiny_vocoder, tmp_path):
    run_dir = make_run(tmp_path / "runs" / "ft-allison", tiny_vocoder)
    out = hub.save_pretrained(run_dir, tmp_path / "repo", training_data="allison-en-16k, 25 clips")
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: hifigan\n")
    assert "# ft-allison" in card and "| training data | allison-en-16k, 25 clips |" in card
    assert "| recipe | v1: batch 2, segment 4096 samples" in card
    assert "| steps | 1,234 (epoch 5) |" in card and "| weights | `generator.pt` of the run |" in card
    assert "| 1234 | 5 | 0.4321 |" in card  # the last validation
    assert "| hifigan | 0.5301 ± 0.0120 | 2.891 ± 0.100 |" in card
    assert "| griffin-lim | 0.1510 ± 0.0020 | 2.640 |" in card and "Copy synthesis of 3 clips" in card
    mel = make_mel()
    with torch.inference_mode():
        assert torch.equal(load_generator(out)(mel[None]), load_generator(run_dir / "generator.pt")(mel[None]))


def test_save_refuses_a_folder_with_other_files_and_replaces_its_own(tiny_vocoder, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "README.md").write_text("my notes")
    with pytest.raises(ConfigError, match="already holds README.md not written by save_pretrained"):
        tiny_vocoder.save_pretrained(folder)
    assert (folder / "README.md").read_text() == "my notes" and sorted(folder.iterdir()) == [folder / "README.md"]
    again = tiny_vocoder.save_pretrained(tmp_path / "saved")
    tiny_vocoder.save_pretrained(again, license="MIT")  # a previous save is replaced
    assert "license: mit" in (again / "README.md").read_text()
    assert not [p for p in again.iterdir() if p.name.startswith(".")]  # no temporary files left
    umask = os.umask(0o022)
    os.umask(umask)
    assert {p.stat().st_mode & 0o777 for p in again.iterdir()} == {0o666 & ~umask}  # not mkstemp's 0o600


def test_low_precision_vocoders_are_not_saved(tiny_config, tmp_path):
    generator = Generator(tiny_config.generator)
    half = Vocoder(generator, tiny_config, device="cpu", dtype="bfloat16", backend="torch")
    with pytest.raises(ConfigError, match="holds bfloat16 weights; save from a float32 one"):
        half.save_pretrained(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_push_to_hub_uploads_the_saved_folder(hub_cache, tiny_vocoder, monkeypatch, tmp_path):
    calls: dict = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create"] = (repo_id, kwargs)

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        folder = Path(folder_path)
        calls["upload"] = (repo_id, kwargs)
        calls["files"] = sorted(p.name for p in folder.iterdir())
        calls["card"] = (folder / "README.md").read_text()
        calls["audio"] = Vocoder.from_checkpoint(folder, device="cpu")(make_mel())
        return "https://huggingface.co/tester/pushed/commit/abc"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    url = tiny_vocoder.push_to_hub("tester/pushed@dev", private=True, training_data="none")
    assert url == "https://huggingface.co/tester/pushed/commit/abc"
    assert calls["create"] == ("tester/pushed", {"private": True, "exist_ok": True})
    assert calls["upload"][0] == "tester/pushed" and calls["upload"][1]["revision"] == "dev"
    assert calls["files"] == ["README.md", "config.json", "model.safetensors"]
    assert 'Vocoder.from_pretrained("tester/pushed")' in calls["card"] and "| training data | none |" in calls["card"]
    assert torch.equal(calls["audio"], tiny_vocoder(make_mel()))
    # a folder save_pretrained wrote goes up as it is (the card the user reviewed)
    folder = tiny_vocoder.save_pretrained(tmp_path / "reviewed")
    (folder / "README.md").write_text((folder / "README.md").read_text() + "\nReviewed.\n")
    hub.push_to_hub(folder, "tester/pushed")
    assert calls["card"].endswith("Reviewed.\n") and calls["upload"][1]["revision"] is None
    assert hub_cache.requests == []


# ---- the safetensors importer ---------------------------------------------------------------------

def test_lone_safetensors_file_carries_its_config_and_conflicts_are_refused(tiny_vocoder, tmp_path):
    path = export_safetensors(tiny_vocoder.generator, tiny_vocoder.config, tmp_path / "tiny.safetensors")
    generator, config = load_generator(path, return_config=True)
    assert config.to_dict() == tiny_vocoder.config.to_dict()
    with torch.inference_mode():
        assert torch.equal(generator(make_mel()[None]), tiny_vocoder.generator(make_mel()[None]))
    other = tiny_vocoder.config.to_dict() | {"name": "edited"}
    (tmp_path / "config.json").write_text(json.dumps(other))
    with pytest.raises(CheckpointError, match="config.json differs from the config in the metadata of"):
        load_generator(path)


def test_safetensors_without_generator_weights_is_refused(tmp_path):
    from safetensors.torch import save_file

    save_file({"encoder.weight": torch.zeros(2)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"is a safetensors file without HiFi-GAN generator weights "
                                              r"\(tensors \['encoder.weight'\]\)"):
        load_generator(tmp_path)


# ---- the command line ----------------------------------------------------------------------------

def test_cli_export_safetensors_folder_and_file(tiny_vocoder, tmp_path, capsys):
    checkpoint = save_generator(tmp_path / "generator.pt", tiny_vocoder.generator.state_dict(), tiny_vocoder.config)
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "safetensors",
                 "--out", str(tmp_path / "repo"), "--training-data", "LJ Speech 1.1"]) == 0
    assert "max |saved - original| on a test mel (2x80x23): 0.00e+00" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert "| training data | LJ Speech 1.1 |" in (tmp_path / "repo" / "README.md").read_text()
    assert main(["export", "--checkpoint", str(checkpoint), "--format", "safetensors",
                 "--out", str(tmp_path / "lone.safetensors")]) == 0
    assert "0.00e+00" in capsys.readouterr().out
    assert main(["inspect", str(tmp_path / "lone.safetensors")]) == 0
    assert "(format safetensors)" in capsys.readouterr().out


def test_cli_synthesize_takes_a_hub_repo(hub_cache, tiny_vocoder, tmp_path, capsys):
    folder = tiny_vocoder.save_pretrained(tmp_path / "saved")
    hub_cache.add("tester/tiny-hifigan", {p.name: p for p in folder.iterdir()})
    np.save(tmp_path / "clip.npy", make_mel().numpy())
    assert main(["synthesize", str(tmp_path / "clip.npy"), "--model", "tester/tiny-hifigan",
                 "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert "model: tester/tiny-hifigan" in capsys.readouterr().out
    assert (tmp_path / "out" / "clip.wav").is_file()
    assert main(["synthesize", str(tmp_path / "clip.npy"), "--model", "tester/missing",
                 "--out", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "tester/missing is not in the local Hugging Face cache" in err
    assert hub_cache.requests == []


def test_finetune_starts_from_a_hub_repo(hub_cache):
    from hifigan.training.finetune import finetune_config, load_source

    fixture = INTEROP / "speechbrain"
    hub_cache.add("speechbrain/tts-hifigan-ljspeech",
                  {name: fixture / name for name in ("hyperparams.yaml", "generator.ckpt")})
    found = load_source("speechbrain/tts-hifigan-ljspeech")
    direct, config = load_generator(fixture, fold_weight_norm=False, return_config=True)
    assert found.config.to_dict() == config.to_dict()
    assert any("parametrizations.weight.original0" in k for k in found.generator)  # weight norm kept to train
    assert all(torch.equal(found.generator[k], v) for k, v in direct.state_dict().items())
    assert finetune_config(found, overrides={"training.discriminator_channel_divisor": 16}).audio == config.audio
    assert hub_cache.requests == []
