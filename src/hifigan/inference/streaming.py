"""Exact streaming: run a local operator on a signal that arrives in pieces.

The generator (and the denoiser) are local: output unit t depends only on
input units [t - left, t + right]. So when input up to unit N has arrived,
every output unit t < N - right is final. `WindowedStream` recomputes the
operator on a window that starts `left` units before the first output not yet
emitted and ends at the newest input, and keeps only the new, final part. The
window never reaches past the data on the right, and on the left it starts at
the true beginning or far enough in, so every emitted value sees exactly the
inputs (and the zero padding at the true edges) that whole-signal synthesis
sees: the concatenated output equals it to float rounding.

Memory is bounded by left + right + one chunk, whatever the utterance length;
`right` input units of lookahead are the algorithmic latency.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch


class WindowedStream:
    """Feed input along the last axis with `push`; get final output; `flush` at the end.

    `fn` maps an input window [..., n] to output [n * scale] (1-D); `align`
    keeps window starts on multiples of it (the denoiser's STFT frame grid).
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        left: int,
        right: int,
        scale: int = 1,
        align: int = 1,
    ) -> None:
        if left < 0 or right < 0 or scale < 1 or align < 1:
            raise ValueError("left/right must be >= 0, scale and align >= 1")
        self.fn = fn
        self.left = left
        self.right = right
        self.scale = scale
        self.align = align
        self._buffer: Optional[torch.Tensor] = None  # input units [start, received)
        self._start = 0
        self._received = 0
        self._done = 0  # input units whose output has been emitted
        self._finished = False

    @property
    def buffered(self) -> int:
        """Input units held in memory right now."""
        return 0 if self._buffer is None else int(self._buffer.shape[-1])

    @property
    def received(self) -> int:
        return self._received

    @property
    def emitted(self) -> int:
        """Input units whose output has been returned."""
        return self._done

    def push(self, chunk: torch.Tensor) -> torch.Tensor:
        """Add input units; return the output that is now final (possibly empty)."""
        if self._finished:
            raise RuntimeError("this stream was flushed; start a new one")
        if chunk.shape[-1] == 0:
            return self._empty()
        self._buffer = chunk if self._buffer is None else torch.cat([self._buffer, chunk], dim=-1)
        self._received += int(chunk.shape[-1])
        ready = self._received - self.right
        return self._emit(ready) if ready > self._done else self._empty()

    def flush(self) -> torch.Tensor:
        """End of input: return the rest of the output (the held-back lookahead)."""
        self._finished = True
        out = self._emit(self._received) if self._received > self._done else self._empty()
        self._buffer = None
        return out

    def _window_start(self, first: int) -> int:
        start = max(0, first - self.left)
        return start - start % self.align

    def _emit(self, end: int) -> torch.Tensor:
        assert self._buffer is not None
        begin = self._window_start(self._done)
        window = self._buffer[..., begin - self._start:]
        out = self.fn(window)
        piece = out[..., (self._done - begin) * self.scale:(end - begin) * self.scale]
        self._done = end
        # Drop input no future window needs.
        keep_from = self._window_start(self._done)
        if keep_from > self._start:
            self._buffer = self._buffer[..., keep_from - self._start:]
            self._start = keep_from
        return piece

    def _empty(self) -> torch.Tensor:
        device = self._buffer.device if self._buffer is not None else None
        return torch.zeros(0, device=device)
