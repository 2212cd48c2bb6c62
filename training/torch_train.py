"""The PyTorch models (two-tower generator, torch ranker) trained through Ray Train.

`fit_two_tower_on_ray` and `fit_torch_ranker_on_ray` run the models' own `fit` inside a
`ray.train.torch.TorchTrainer` (workers from `RaySettings`: one locally, more on a cluster). Each worker
trains on its share of the batches with the network wrapped by `ray.train.torch.prepare_model` (DDP when
there is more than one worker), so the same code runs on a laptop and on a cluster. The data reaches the
workers through Ray's object store; rank 0 saves the fitted model with its own pickle-free `save` into a
Ray Train checkpoint, and the driver loads it back from `result.checkpoint`.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from models.generators.two_tower import TwoTowerGenerator
from models.torch_hooks import TrainHooks
from models.torch_ranker import TorchRanker
from training.ray_runtime import RaySettings, ensure_ray, scaling_config, storage


def _hooks() -> TrainHooks:
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    world = context.get_world_size()
    return TrainHooks(
        wrap_module=ray.train.torch.prepare_model if world > 1 else None,
        rank=context.get_world_rank(),
        world_size=world,
    )


def _report(model: Any, metrics: dict[str, float], config: dict[str, Any]) -> None:
    """Rank 0 reports the model as a checkpoint; the other workers report the metrics only.

    Workers' checkpoints are copied to the run's storage by `report`, so their folder can go right after;
    in local mode (no workers) the checkpoint stays where it is, in the run's storage folder.
    """
    import ray.train

    if ray.train.get_context().get_world_rank() != 0:
        ray.train.report(metrics)
        return
    if config.get("local_scratch"):
        directory = Path(config["local_scratch"]) / f"model-{uuid.uuid4().hex[:8]}"
        model.save(directory)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(str(directory)))
        return
    with tempfile.TemporaryDirectory(prefix="fitrec-ckpt-") as scratch:
        model.save(Path(scratch))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(scratch))


def _two_tower_loop(config: dict[str, Any]) -> None:
    import ray

    interactions, items, users_frame = ray.get(config["data"])
    started = time.perf_counter()
    model = TwoTowerGenerator(**config["params"]).fit(interactions, items, users_frame=users_frame, hooks=_hooks())
    metrics = {"fit_seconds": time.perf_counter() - started}
    if model.history:
        metrics["loss"] = model.history[-1]["loss"]
    _report(model, metrics, config)


def _torch_ranker_loop(config: dict[str, Any]) -> None:
    import ray

    train, valid = ray.get(config["data"])
    started = time.perf_counter()
    model = TorchRanker().fit(
        train,
        valid,
        features=config["features"],
        categorical=config["categorical"],
        params=config["params"],
        hooks=_hooks(),
    )
    _report(model, {"fit_seconds": time.perf_counter() - started, "valid_ndcg@10": model.valid_ndcg}, config)


def _run(
    loop: Callable[[dict[str, Any]], None],
    config: dict[str, Any],
    *,
    name: str,
    load: Callable[[Path], Any],
    settings: RaySettings | None,
) -> tuple[Any, dict[str, Any]]:
    """Run `loop` on Ray Train workers; the model rank 0 checkpointed, loaded with `load`, and its metrics."""
    from ray.train import RunConfig
    from ray.train.torch import TorchTrainer

    scaling = scaling_config(settings)
    with storage(settings) as path:
        if scaling.num_workers == 0:
            config = {**config, "local_scratch": path}
        trainer = TorchTrainer(
            loop,
            train_loop_config=config,
            scaling_config=scaling,
            run_config=RunConfig(storage_path=path, name=f"{name}-{uuid.uuid4().hex[:8]}"),
        )
        result = trainer.fit()
        if result.checkpoint is None:
            raise RuntimeError(f"the Ray Train run {name} returned no checkpoint: {result.error!r}")
        with result.checkpoint.as_directory() as directory:
            model = load(Path(directory))
        return model, dict(result.metrics or {})


def fit_two_tower_on_ray(
    interactions: pd.DataFrame,
    items: pd.DataFrame | None = None,
    *,
    users_frame: pd.DataFrame | None = None,
    params: Mapping[str, Any] | None = None,
    settings: RaySettings | None = None,
) -> TwoTowerGenerator:
    """A `TwoTowerGenerator(**params)` fitted by Ray Train workers, loaded on the driver."""
    import ray

    ensure_ray(settings)
    config = {
        "data": ray.put((interactions, items, users_frame)),
        "params": dict(params or {}),
    }
    model, metrics = _run(_two_tower_loop, config, name="two_tower", load=TwoTowerGenerator.load, settings=settings)
    model.train_metrics = metrics
    return model  # type: ignore[no-any-return]


def fit_torch_ranker_on_ray(
    train: pd.DataFrame,
    valid: pd.DataFrame,
    *,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    params: Mapping[str, Any] | None = None,
    settings: RaySettings | None = None,
) -> TorchRanker:
    """A `TorchRanker` fitted (early stopping on `valid`) by Ray Train workers, loaded on the driver."""
    import ray

    ensure_ray(settings)
    config = {
        "data": ray.put((train, valid)),
        "features": list(features),
        "categorical": list(categorical),
        "params": dict(params or {}),
    }
    model, metrics = _run(_torch_ranker_loop, config, name="torch_ranker", load=TorchRanker.load, settings=settings)
    model.train_metrics = metrics
    return model  # type: ignore[no-any-return]
