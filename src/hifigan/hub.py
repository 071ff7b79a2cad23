"""Models from and to the Hugging Face Hub, stored as safetensors (the `hub` extra).

Loading: `owner/name[@revision]` is fetched with huggingface_hub's
`snapshot_download` (from the local cache when it is there, so `HF_HUB_OFFLINE=1`
works for models fetched once) and the snapshot folder is read like any model
folder by the importers of `checkpoints/formats/`: ours (`config.json` +
`model.safetensors`), SpeechBrain's (`hyperparams.yaml` + `generator.ckpt`, as
`speechbrain/tts-hifigan-ljspeech`) or NeMo's (one `.nemo` file). Only the
files those importers read are downloaded.

Saving: `save_pretrained` writes `config.json` (our config, front end
included), `model.safetensors` (folded float32 weights as plain tensors: a
safetensors file cannot carry code, so loading it runs none) and a model card
`README.md` with the training data, recipe, steps, last validation and an
evaluation table when a run directory has them. `push_to_hub` uploads such a
folder. huggingface_hub and safetensors are imported only here and in the
safetensors importer, so the rest of the package works without the extra.
"""
from __future__ import annotations

import dataclasses
import json
import re
import tempfile
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Optional, Union

from .checkpoints.formats.safetensors import CONFIG_NAME, HUB_INSTALL, METADATA_KEY, WEIGHTS_NAME
from .files import atomic_write_bytes
from .config import HiFiGANConfig
from .errors import CheckpointError, ConfigError, first_line

CARD_NAME = "README.md"
# what the importers read from a model repo; nothing else is downloaded
DOWNLOAD_PATTERNS = (CONFIG_NAME, WEIGHTS_NAME, "generator.pt", "hyperparams.yaml", "generator.ckpt", "*.nemo")
LAYOUTS = ("config.json + model.safetensors (ours), hyperparams.yaml + generator.ckpt (SpeechBrain) "
           "or one .nemo file (NeMo)")
_REPO_ID = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95})(?:@(?P<revision>[^\s@]+))?$")
ModelLike = Any  # a Vocoder, a Generator (with config=), or a path load_generator reads


# ---- names -----------------------------------------------------------------------------
def is_repo_id(name: str) -> bool:
    """`owner/name` or `owner/name@revision` (a registry name never has a slash)."""
    return bool(_REPO_ID.match(str(name)))


def parse_repo_id(name: str) -> tuple[str, Optional[str]]:
    """`owner/name[@revision]` -> (repo id, revision or None)."""
    match = _REPO_ID.match(str(name))
    if match is None:
        raise ConfigError(f"{name!r} is not a Hugging Face Hub repo id (owner/name or owner/name@revision)")
    return match.group("repo"), match.group("revision")


def _huggingface_hub():
    try:
        import huggingface_hub
        import huggingface_hub.constants  # noqa: F401  (the submodules used below)
        import huggingface_hub.errors  # noqa: F401
    except ImportError:
        raise ConfigError(f"models on the Hugging Face Hub need the hub extra: {HUB_INSTALL}") from None
    return huggingface_hub




# ---- loading ---------------------------------------------------------------------------
def download(name: str) -> Path:
    """The local snapshot folder of `owner/name[@revision]`: the cached one, or downloaded."""
    repo, revision = parse_repo_id(name)
    hf = _huggingface_hub()
    errors = hf.errors
    try:
        folder = Path(hf.snapshot_download(repo, revision=revision, allow_patterns=list(DOWNLOAD_PATTERNS),
                                           library_name="hifigan"))
    except errors.RevisionNotFoundError:
        raise CheckpointError(f"Hugging Face Hub repo {repo} has no revision {revision!r}") from None
    except errors.GatedRepoError:
        raise CheckpointError(f"Hugging Face Hub repo {repo} is gated: accept its terms on the Hub, "
                              "then log in with `hf auth login`") from None
    except errors.RepositoryNotFoundError:
        raise CheckpointError(f"no Hugging Face Hub repo {repo} (if it is private, log in with "
                              "`hf auth login`)") from None
    except errors.LocalEntryNotFoundError:
        raise CheckpointError(_not_cached(hf, name)) from None
    except errors.HFValidationError as exc:
        raise ConfigError(f"{name!r} is not a Hugging Face Hub repo id: {first_line(exc)}") from None
    except (errors.HfHubHTTPError, OSError) as exc:
        raise CheckpointError(f"cannot fetch Hugging Face Hub repo {name}: {first_line(exc)}") from None
    names = [path.name for path in folder.iterdir()] if folder.is_dir() else []
    if not any(fnmatch(n, pattern) for n in names for pattern in DOWNLOAD_PATTERNS):
        raise CheckpointError(f"Hugging Face Hub repo {name} holds no model this package reads; expected {LAYOUTS}")
    return folder


def _not_cached(hf, name: str) -> str:
    constants = hf.constants
    offline = constants.is_offline_mode() if hasattr(constants, "is_offline_mode") else constants.HF_HUB_OFFLINE
    why = "HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached"
    return (f"{name} is not in the local Hugging Face cache ({constants.HF_HUB_CACHE}) and {why}: "
            f"fetch it once with network access (`hf download {parse_repo_id(name)[0]}`)")


def load_from_hub(name: str, *, config: Union[str, Path, HiFiGANConfig, None] = None,
                  fold_weight_norm: bool = True):
    """`(Generator, HiFiGANConfig)` of a Hub repo in any layout the importers read, eval mode, on CPU."""
    from .checkpoints import load_generator

    return load_generator(download(name), config=config, fold_weight_norm=fold_weight_norm, return_config=True)


# ---- the model card --------------------------------------------------------------------
@dataclass
class ModelCard:
    """What README.md says beside the config: provenance, training and scores (None: not known)."""

    name: str = ""
    description: str = ""
    training_data: Optional[str] = None
    license: Optional[str] = None
    source: Optional[str] = None
    recipe: Optional[str] = None
    steps: Optional[int] = None
    epochs: Optional[int] = None
    weights: Optional[str] = None  # which file of a run the weights are
    validation: Optional[dict] = None  # the last row of validation.jsonl
    evaluation: Optional[dict] = None  # `hifigan evaluate`'s metrics.json
    repo_id: Optional[str] = None

    def render(self, config: HiFiGANConfig, parameters: int) -> str:
        """The README.md text: Hub metadata, how to load, the model table, validation and evaluation."""
        from .audio.frontends import describe_frontend

        g, a = config.generator, config.audio
        repo = self.repo_id or f"OWNER/{self.name or config.name}"
        rows = [
            ("architecture", f"HiFi-GAN generator, ResBlock{g.resblock}, upsampling "
                             f"{'x'.join(map(str, g.upsample_rates))}, {g.upsample_initial_channel} initial "
                             f"channels, {parameters:,} parameters"),
            ("mel it expects", f"{a.sampling_rate} Hz audio; {describe_frontend(a)}"),
            ("training data", self.training_data or "not recorded (pass training_data= when saving)"),
            ("recipe", self.recipe),
            ("steps", None if self.steps is None else
             f"{self.steps:,}" + (f" (epoch {self.epochs})" if self.epochs is not None else "")),
            ("weights", self.weights),
            ("source", self.source),
            ("license", self.license),
            ("files", f"`{WEIGHTS_NAME}`: folded float32 weights, plain tensors (no code); `{CONFIG_NAME}`: "
                      "the hifigan config, mel front end included"),
        ]
        lines = _front_matter(self.license) + [
            f"# {self.name or config.name}", "",
            self.description or "A HiFi-GAN vocoder: mel spectrogram in, waveform out.", "",
            "## Use", "", "```python", "import hifigan", "",
            f'vocoder = hifigan.Vocoder.from_pretrained("{repo}")',
            "audio = vocoder(mel)  # [n_mels, frames] -> [frames * hop] float32",
            "```", "",
            f"or `hifigan synthesize --model {repo} speech.wav --out out/` (`pip install \"hifigan[hub]\"`).",
            "", "## Model", "", "| | |", "| --- | --- |",
            *[f"| {key} | {value} |" for key, value in rows if value],
        ]
        if self.validation:
            lines += ["", "## Validation (last)", "", *_validation_table(self.validation)]
        if self.evaluation:
            lines += ["", "## Evaluation", "", *_evaluation_table(self.evaluation)]
        return "\n".join(lines) + "\n"


def _front_matter(license: Optional[str]) -> list[str]:
    lines = ["---", "library_name: hifigan"]
    if license and re.fullmatch(r"[a-z0-9.\-]+", license.lower()):
        lines.append(f"license: {license.lower()}")
    return lines + ["tags:", "- audio", "- vocoder", "- hifigan", "- speech-synthesis", "---", ""]


def _validation_table(row: dict) -> list[str]:
    keys = [k for k, v in row.items() if k not in ("time", "utterances") and isinstance(v, (int, float))]
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys),
             "| " + " | ".join(f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k]) for k in keys) + " |"]
    if "utterances" in row:
        lines += ["", f"on {row['utterances']} validation utterances (mel L1: the authors' loss mel, natural log)"]
    return lines


def _evaluation_table(report: dict) -> list[str]:
    """`hifigan evaluate`'s summary as a markdown table: mean +- 95% CI per system and metric."""
    from .evaluation.evaluate import METRICS

    summary = report.get("summary") or {}
    specs = [m for m in METRICS if m.in_table and any(m.key in s for s in summary.values())]
    lines = ["| system | " + " | ".join(m.label for m in specs) + " |", "| --- |" + " --- |" * len(specs)]
    for system, scores in summary.items():
        cells = []
        for m in specs:
            value = scores.get(m.key) or {}
            mean, ci = value.get("mean"), value.get("ci95")
            cells.append("-" if mean is None else f"{mean:.{m.digits}f}" + (f" ± {ci:.{m.digits}f}" if ci else ""))
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    clips = len(report.get("files") or [])
    settings = report.get("settings") or {}
    lines += ["", f"Copy synthesis of {clips} clips (`hifigan evaluate`), mean ± 95% CI"
              + (f"; {settings['note']}" if settings.get("note") else ".")]
    return lines


def model_card(name: str) -> ModelCard:
    """The card of a named model: a registered one's provenance and license, or its Hub repo."""
    from .pretrained import MODELS, get_model

    if name not in MODELS and is_repo_id(name):
        return ModelCard(name=parse_repo_id(name)[0].split("/")[1], source=f"Hugging Face Hub repo `{name}`")
    model = get_model(name)
    return ModelCard(name=model.name, description=model.description, training_data=model.training_data,
                     license=model.license, source=model.source)


def run_dir_of(path: Union[str, Path]) -> Optional[Path]:
    """The training run directory `path` is or lies in (generator.pt, checkpoints/step-*.ckpt), if any."""
    from .training.run import CONFIG_NAME as RUN_CONFIG, HISTORY_NAME, SUMMARY_NAME

    path = Path(path)
    candidates = [path] if path.is_dir() else [path.parent, path.parent.parent]
    for folder in candidates:
        if (folder / RUN_CONFIG).is_file() and ((folder / SUMMARY_NAME).is_file() or (folder / HISTORY_NAME).is_file()):
            return folder
    return None


def run_card(run_dir: Union[str, Path], weights: Union[str, Path, None] = None) -> ModelCard:
    """A card from a run directory: its config.yaml, summary.json, validation.jsonl and metrics.json."""
    from .training.run import CONFIG_NAME as RUN_CONFIG, HISTORY_NAME, SUMMARY_NAME, read_history

    run_dir = Path(run_dir)
    config = HiFiGANConfig.load(run_dir / RUN_CONFIG)
    t = config.training
    summary = _read_json(run_dir / SUMMARY_NAME) or {}
    history = read_history(run_dir / HISTORY_NAME, warn=False) or summary.get("validation") or []
    from .checkpoints.formats.ours import EXPORT_NAME

    source = Path(weights) if weights is not None else run_dir
    where = None
    if source == run_dir:
        where = EXPORT_NAME  # what the ours importer reads from a run directory
    elif source.is_relative_to(run_dir):
        where = source.relative_to(run_dir)
    return ModelCard(
        name=run_dir.name,
        recipe=f"{config.name}: batch {t.batch_size}, segment {t.segment_size} samples, learning rate "
               f"{t.learning_rate:g} (decay {t.lr_decay:g} per epoch), precision {t.precision}"
               + (f", EMA {t.ema_decay:g}" if t.ema_decay else ""),
        steps=summary.get("step"),
        epochs=summary.get("epoch"),
        weights=f"`{where}` of the run" if where else None,
        validation=history[-1] if history else None,
        evaluation=find_evaluation(run_dir),
    )


def find_evaluation(run_dir: Path) -> Optional[dict]:
    """`hifigan evaluate`'s metrics.json in the run directory or one folder below it (the first found)."""
    for path in [run_dir / "metrics.json", *sorted(run_dir.glob("*/metrics.json"))]:
        data = _read_json(path)
        if isinstance(data, dict) and isinstance(data.get("summary"), dict):
            return data
    return None


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({first_line(exc)})") from None


# ---- saving ------------------------------------------------------------------------------
def _resolve(model: ModelLike, config: Any) -> tuple[Any, HiFiGANConfig, ModelCard]:
    """(generator, config, card) from a Vocoder, a Generator + config, or a checkpoint path / run directory."""
    import torch

    from .inference.vocoder import Vocoder
    from .models import Generator

    if isinstance(model, Generator):
        if config is None:
            raise ConfigError("save_pretrained(generator, ...) needs config= (the HiFiGANConfig it was built with)")
        from .config import resolve_config

        return model, resolve_config(config), ModelCard()
    if isinstance(model, Vocoder):
        if model.generator is None:
            raise ConfigError("this vocoder runs an ONNX session and holds no PyTorch weights to save")
        if model.dtype != torch.float32:
            raise ConfigError(f"this vocoder holds {str(model.dtype).replace('torch.', '')} weights; save from a "
                              "float32 one (dtype='float32') so the file keeps the trained weights")
        return model.generator, model.config, ModelCard()
    from .checkpoints import load_generator

    path = Path(model)
    generator, cfg = load_generator(path, config=config, return_config=True)
    run_dir = run_dir_of(path)
    card = run_card(run_dir, weights=path) if run_dir is not None else ModelCard(source=f"`{path.name}`")
    return generator, cfg, card


def is_saved_folder(folder: Union[str, Path]) -> bool:
    """A folder `save_pretrained` wrote: model.safetensors with our config in its metadata, config.json."""
    from .checkpoints.formats.safetensors import read_tensors

    folder = Path(folder)
    weights = folder / WEIGHTS_NAME
    if not (weights.is_file() and (folder / CONFIG_NAME).is_file()):
        return False
    try:
        return METADATA_KEY in read_tensors(weights)[1]
    except CheckpointError:
        return False


def save_pretrained(
    model: ModelLike,
    folder: Union[str, Path],
    *,
    config: Union[str, Path, HiFiGANConfig, None] = None,
    card: Optional[ModelCard] = None,
    training_data: Optional[str] = None,
    license: Optional[str] = None,
    evaluation: Union[str, Path, None] = None,
    repo_id: Optional[str] = None,
) -> Path:
    """Write `folder`/config.json, model.safetensors and README.md (see the module docstring).

    `model`: a Vocoder, a Generator (with `config`), or a path `load_generator`
    reads; a run directory (or a file in one) fills the card from the run.
    `training_data`, `license`, `evaluation` (a metrics.json) and `repo_id`
    (for the card's example) add to the card. A folder holding other files of
    these names is refused; a previous save is replaced file by file.
    """
    from .inference.export import export_safetensors

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is a file; save_pretrained writes a folder")
    clashes = [name for name in (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME) if (folder / name).exists()]
    if clashes and not is_saved_folder(folder):
        raise ConfigError(f"{folder} already holds {', '.join(clashes)} not written by save_pretrained: "
                          "choose an empty folder")
    generator, cfg, found = _resolve(model, config)
    card = dataclasses.replace(card or found)
    card.name = card.name or cfg.name
    card.training_data = training_data or card.training_data
    card.license = license or card.license
    card.repo_id = repo_id or card.repo_id
    if evaluation is not None:
        card.evaluation = _read_json(Path(evaluation))
        if not isinstance(card.evaluation, dict) or "summary" not in card.evaluation:
            raise ConfigError(f"{evaluation}: not an evaluation results file of `hifigan evaluate` (metrics.json)")
    export_safetensors(generator, cfg, folder / WEIGHTS_NAME)
    atomic_write_bytes(folder / CONFIG_NAME, (json.dumps(cfg.to_dict(), indent=2) + "\n").encode())
    atomic_write_bytes(folder / CARD_NAME, card.render(cfg, generator.num_parameters()).encode())
    return folder


def push_to_hub(
    model: ModelLike,
    repo_id: str,
    *,
    private: Optional[bool] = None,
    token: Optional[str] = None,
    commit_message: str = "Upload HiFi-GAN vocoder",
    **save_options: Any,
) -> str:
    """Upload `model` (anything `save_pretrained` takes, or a folder it wrote) to `repo_id`; the commit URL.

    The repo is created when it does not exist; `owner/name@branch` commits to that branch.
    """
    hf = _huggingface_hub()
    repo, revision = parse_repo_id(repo_id)
    with tempfile.TemporaryDirectory(prefix="hifigan-hub-") as tmp:
        if isinstance(model, (str, Path)) and Path(model).is_dir() and is_saved_folder(model) and not save_options:
            folder = Path(model)  # exactly what the user reviewed
        else:
            folder = save_pretrained(model, Path(tmp) / "model", repo_id=repo, **save_options)
        api = hf.HfApi(token=token)
        try:
            api.create_repo(repo, private=private, exist_ok=True)
            info = api.upload_folder(repo_id=repo, folder_path=str(folder), commit_message=commit_message,
                                     revision=revision, ignore_patterns=[".*"])
        except hf.errors.OfflineModeIsEnabled:
            raise CheckpointError(f"cannot push to {repo}: HF_HUB_OFFLINE is set") from None
        except hf.errors.HfHubHTTPError as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            hint = " (log in with `hf auth login` or pass token=)" if status in (401, 403) else ""
            raise CheckpointError(f"cannot push to Hugging Face Hub repo {repo}: {first_line(exc)}{hint}") from None
        except Exception as exc:  # the transport errors of whichever HTTP client huggingface_hub uses
            raise CheckpointError(f"cannot push to Hugging Face Hub repo {repo}: {first_line(exc)}") from None
    return str(getattr(info, "commit_url", None) or info)
