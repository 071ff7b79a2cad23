"""Exact data position on resume: the training loader as a Lightning "stateful" loader.

Lightning saves `loader.state_dict()` in each checkpoint and, when resuming,
calls `loader.load_state_dict()` before it creates the first iterator. Here
the state is (epoch, batches already trained in that epoch); on resume the
loader's sampler replays that epoch's shuffled order and skips those batches,
so a resumed run sees the rest of the epoch it was killed in, not a restart of
it. (Random crops are a function of (seed, epoch, index), so they repeat exactly too.)
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Optional

from torch.utils.data import Sampler


class ResumeSampler(Sampler):
    """Wraps a (distributed) sampler; after `resume_at`, its next pass starts mid-epoch."""

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner
        self._pending: Optional[tuple[int, int]] = None  # (epoch, indices to skip)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def resume_at(self, epoch: int, skip: int) -> None:
        self._pending = (epoch, skip)

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        pending, self._pending = self._pending, None
        if pending is None:
            yield from self.inner
            return
        epoch, skip = pending
        self.set_epoch(epoch)
        for position, index in enumerate(self.inner):
            if position >= skip:
                yield index


def make_resumable(loader: Any, position: Callable[[], tuple[int, int]]) -> bool:
    """Give `loader` Lightning's state_dict/load_state_dict; `position()` -> (epoch, batches done).

    Returns False (and leaves the loader alone) when it has no batch sampler to wrap.
    """
    batch_sampler = getattr(loader, "batch_sampler", None)
    batch_size = getattr(batch_sampler, "batch_size", None)
    if batch_sampler is None or batch_size is None or not hasattr(batch_sampler, "sampler"):
        return False
    wrapper = ResumeSampler(batch_sampler.sampler)
    batch_sampler.sampler = wrapper

    def state_dict() -> dict[str, int]:
        epoch, batches = position()
        return {"epoch": int(epoch), "batches": int(batches), "batch_size": int(batch_size)}

    def load_state_dict(state: dict[str, int]) -> None:
        if state.get("batch_size") == batch_size and state.get("batches", 0) > 0:
            wrapper.resume_at(int(state["epoch"]), int(state["batches"]) * batch_size)

    loader.state_dict = state_dict
    loader.load_state_dict = load_state_dict
    return True


def resumable_datamodule(datamodule: Any, position: Callable[[], tuple[int, int]]) -> Any:
    """Make the loaders `datamodule.train_dataloader()` returns resumable (see module doc)."""
    original = datamodule.train_dataloader

    def train_dataloader():
        loader = original()
        make_resumable(loader, position)
        return loader

    datamodule.train_dataloader = train_dataloader
    return datamodule
