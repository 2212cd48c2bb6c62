"""How a distributed runner (Ray Train) drives the PyTorch models' `fit` without the models knowing Ray."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass
class TrainHooks:
    """Wrap the network (e.g. DDP), this worker's share of the batches, a report after every epoch.

    Every worker runs the same number of steps per epoch (the data is cut to a multiple of the world size),
    as DDP's gradient all-reduce needs.
    """

    wrap_module: Callable[[nn.Module], nn.Module] | None = None
    rank: int = 0
    world_size: int = 1
    on_epoch: Callable[[int, dict[str, float]], None] | None = None
