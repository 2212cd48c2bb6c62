"""A simulated interactions file shaped like MovieLens-100K, with known structure, for tests and development.

Defaults: 943 users, 1,682 items, 100k interactions. Items have a long-tailed popularity and latent
factors; users have latent tastes and a long-tailed activity; each user picks items without replacement
with probability ∝ exp(popularity + taste · factors) (Gumbel top-n). Timestamps fall in a short active
window per user; ratings 1-5 grow with the taste match. Each item's `genre` is its strongest factor, so
the content-based source has something real to find.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_START = 874_724_710  # MovieLens-100K's first timestamp (1997-09-20)
_DAY = 86_400


def simulate_interactions(
    *,
    n_users: int = 943,
    n_items: int = 1682,
    n_interactions: int = 100_000,
    factors: int = 8,
    taste: float = 1.5,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(interactions: user_id, item_id, rating, timestamp; items: genre indexed by item_id)."""
    rng = np.random.default_rng(seed)
    item_factors = rng.normal(size=(n_items, factors))
    user_factors = rng.normal(size=(n_users, factors)) / np.sqrt(factors)
    popularity = rng.normal(scale=1.2, size=n_items)  # log-normal shares: a long tail
    activity = rng.lognormal(sigma=0.9, size=n_users)
    counts = np.clip(np.round(activity / activity.sum() * n_interactions), 5, n_items // 2).astype(int)
    logits = popularity[None, :] + taste * user_factors @ item_factors.T
    keys = logits + rng.gumbel(size=logits.shape)
    order = np.argsort(-keys, axis=1)
    users = np.repeat(np.arange(n_users), counts)
    items = np.concatenate([order[u, : counts[u]] for u in range(n_users)])
    match = (user_factors[users] * item_factors[items]).sum(axis=1)
    rating = np.clip(np.round(3.0 + 1.0 * match + rng.normal(scale=0.7, size=len(users))), 1, 5)
    start = _START + rng.integers(0, 200 * _DAY, size=n_users)
    span = rng.integers(_DAY // 24, 30 * _DAY, size=n_users)
    timestamp = start[users] + (rng.random(len(users)) * span[users]).astype(np.int64)
    interactions = pd.DataFrame(
        {
            "user_id": (users + 1).astype(str),
            "item_id": (items + 1).astype(str),
            "rating": rating.astype(int),
            "timestamp": timestamp,
        }
    )
    genres = pd.DataFrame(
        {"genre": [f"g{g}" for g in np.argmax(item_factors, axis=1)]},
        index=pd.Index((np.arange(n_items) + 1).astype(str), name="item_id"),
    )
    return interactions, genres


def write_movielens(interactions: pd.DataFrame, path: str) -> None:
    """As MovieLens `u.data`: tab-separated user, item, rating, timestamp, no header."""
    interactions[["user_id", "item_id", "rating", "timestamp"]].to_csv(path, sep="\t", header=False, index=False)
