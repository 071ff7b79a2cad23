"""Shared test fixtures: where the reference data lives, tiny configs, real clips.

The reference outputs of the authors' code and the allison-en-16k corpus live
in the workplace's `shared/` folder beside the checkout. Tests that need them
fail with a clear message (never skip) when it cannot be found.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def find_shared_dir() -> Path:
    """$HIFIGAN_SHARED_DIR, else `shared/` beside the checkout, else /work/shared."""
    candidates = []
    if os.environ.get("HIFIGAN_SHARED_DIR"):
        candidates.append(Path(os.environ["HIFIGAN_SHARED_DIR"]))
    candidates += [REPO.parent / "shared", REPO / "shared", Path("/work/shared")]
    for candidate in candidates:
        if (candidate / "fixtures" / "README.md").exists():
            return candidate
    raise RuntimeError(
        "the shared reference data (fixtures/, data/allison-en-16k/) was not found; looked in "
        + ", ".join(str(c) for c in candidates)
        + ". Set HIFIGAN_SHARED_DIR to the folder that holds them."
    )


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Test models are tiny: one intra-op thread is as fast, and never oversubscribes a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return find_shared_dir()


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir: Path) -> Path:
    return shared_dir / "fixtures"


@pytest.fixture(scope="session")
def allison_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "allison-en-16k"


@pytest.fixture(scope="session")
def original_state_dicts(fixtures_dir: Path):
    """`name -> state dict in the authors' layout` for the fixture weights."""
    sys.path.insert(0, str(fixtures_dir))
    try:
        from reference_weights import fill_state_dict
    finally:
        sys.path.pop(0)
    keys = json.loads((fixtures_dir / "original_keys.json").read_text())
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = fill_state_dict(keys[name])
        return cache[name]

    return get


@pytest.fixture
def tiny_config():
    """A V1-shaped config with a 16-channel generator: fast enough for unit tests."""
    from hifigan.config import preset, with_generator_channels

    config = with_generator_channels(preset("v1"), 16)
    config.training.segment_size = 4096
    config.training.batch_size = 2
    config.training.num_workers = 0
    return config
