"""A training DataLoader that a run killed mid-epoch resumes exactly where it stopped.

Lightning saves the ``state_dict()`` of a stateful training loader in every checkpoint
and gives it back with ``load_state_dict()`` on ``--ckpt_path``. This loader records
the epoch, the batches already yielded in it and the random number generator states of
the moment; the sampler's order depends only on the seed and the epoch. A resumed run
therefore sees the remaining batches of the interrupted epoch in the same order, with
the same random draws (augmentations, dropout), as a run that never stopped.

Limits: under DDP Lightning wraps the sampler in a distributed one, so the position
inside an epoch is not restored (a warning says so); the generator states saved are
rank 0's.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

__all__ = ["EpochSampler", "ResumableDataLoader"]


class EpochSampler(Sampler[int]):
    """Indices in an order that depends only on ``seed`` and the epoch (``set_epoch``).

    Args:
        length: Number of items.
        shuffle: Shuffle (else 0..length-1).
        seed: Seed of the shuffles; default ``torch.initial_seed()`` (set by
            ``seed_everything``).
    """

    def __init__(self, length: int, shuffle: bool = True, seed: int | None = None) -> None:
        self.length = length
        self.shuffle = shuffle
        self.seed = int(torch.initial_seed() if seed is None else seed) % (2**62)
        self.epoch = 0
        self.skip = 0  # items of the current epoch already consumed (set on resume)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration follows (Lightning calls it)."""
        if epoch != self.epoch:
            self.skip = 0  # a position saved in another epoch does not apply
        self.epoch = epoch

    def order(self) -> list[int]:
        """The full order of the current epoch."""
        if not self.shuffle:
            return list(range(self.length))
        generator = torch.Generator()
        generator.manual_seed(self.seed + 1_000_003 * self.epoch)
        return [int(i) for i in torch.randperm(self.length, generator=generator)]

    #: Items skipped at the start of the last iteration (a resumed epoch).
    started_at = 0

    def __iter__(self) -> Iterator[int]:
        self.started_at, self.skip = self.skip, 0
        return iter(self.order()[self.started_at:])

    def __len__(self) -> int:
        return self.length


def _rng_states() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()  # type: ignore[misc]
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos),
                  int(has_gauss), float(gauss)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    if "torch" in states:
        torch.set_rng_state(states["torch"])
    if "numpy" in states:
        kind, keys, pos, has_gauss, gauss = states["numpy"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    if "python" in states:
        version, internal, gauss_next = states["python"]
        random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ResumableDataLoader(DataLoader[Any]):
    """A DataLoader whose position inside an epoch is saved in checkpoints (see module doc)."""

    _yielded = 0
    _pending_rng: dict[str, Any] | None = None

    def __iter__(self) -> Any:
        iterator = super().__iter__()
        self._yielded = 0
        if self._pending_rng is not None:
            _set_rng_states(self._pending_rng)
            self._pending_rng = None
        return self._count(iterator)

    def _count(self, iterator: Any) -> Iterator[Any]:
        first = True
        for batch in iterator:
            if first:  # the sampler has started now: count the batches a resume skipped
                skipped = int(getattr(self.sampler, "started_at", 0))
                self._yielded = skipped // int(self.batch_size or 1)
                first = False
            self._yielded += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """Epoch, batches yielded in it, and the random generator states (for Lightning)."""
        sampler = self.sampler
        return {
            "epoch": int(getattr(sampler, "epoch", 0)),
            "batches": int(self._yielded),
            "resumable": isinstance(sampler, EpochSampler),
            "rng": _rng_states(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue after the saved batch on the next iteration (Lightning calls this)."""
        sampler = self.sampler
        batches = int(state.get("batches", 0))
        if isinstance(sampler, EpochSampler) and state.get("resumable"):
            sampler.set_epoch(int(state.get("epoch", 0)))
            sampler.skip = batches * int(self.batch_size or 1)
        elif batches:
            warnings.warn(
                "resuming mid-epoch: this training loader's sampler was replaced (e.g. by a "
                "distributed sampler), so the epoch restarts from its first batch",
                stacklevel=2,
            )
        self._pending_rng = state.get("rng")
