"""Precompute throughput: users/s of `precompute` at growing user counts on the configured (trained) data folder,
into a scratch key prefix of the shared cache that is deleted after. Linear scaling shows as flat users/s."""

import os
import uuid
from dataclasses import dataclass

from pipelines.bench_serving import delete_matching
from pipelines.precompute import PrecomputeReport, active_users, precompute
from serving.config import ServingSettings


@dataclass(frozen=True)
class PrecomputeRound:
    users: int
    real_users: int  # active users of the data folder; the rest are ids it has never seen (cold-start ranking)
    report: PrecomputeReport
    load_before: float
    load_after: float


def bench_users(settings: ServingSettings, n: int) -> tuple[list[str], int]:
    """n distinct users: the folder's active ones first, then new ids."""
    real = active_users(settings, days=3650)[:n]
    return real + [f"bench-user-{i:06d}" for i in range(n - len(real))], len(real)


def bench_precompute(
    settings: ServingSettings, *, sizes: list[int], actors: int | None = None, batch_size: int = 200
) -> list[PrecomputeRound]:
    prefix = f"fitrec-bench-precompute-{uuid.uuid4().hex[:8]}:"
    scratch = settings.model_copy(update={"cache_prefix": prefix})
    rounds = []
    try:
        for n in sizes:
            users, real = bench_users(settings, n)
            before = os.getloadavg()[0]
            report = precompute(scratch, users=users, actors=actors, batch_size=batch_size)
            rounds.append(PrecomputeRound(n, real, report, before, os.getloadavg()[0]))
            delete_matching(settings.cache_url, f"{prefix}*".encode())
    finally:
        delete_matching(settings.cache_url, f"{prefix}*".encode())
    return rounds
