"""Events kept as numpy columns and turned into envelope dicts only when asked for.

A million events as Python dicts take about a gigabyte; as columns they take a few
tens of megabytes, and rendering a batch of 5,000 dicts takes milliseconds. So the
simulator stores columns and renders batches on demand.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

DAY_MS = 86_400_000
# Causal order of types; events with the same timestamp keep it (the sort is stable).
EVENT_ORDER = (
    "user.created",
    "user.email_verified",
    "payment.completed",
    "subscription.activated",
    "recommendation.impression",
    "recommendation.clicked",
    "recommendation.dismissed",
    "plan.enrolled",
    "content.viewed",
    "workout.started",
    "exercise.logged",
    "workout.completed",
    "health_metric.synced",
)


@dataclass(frozen=True)
class Coded:
    """Codes into a vocabulary; code -1 renders as None."""

    codes: np.ndarray
    vocab: Sequence[str]


@dataclass(frozen=True)
class Ids:
    """Numbered identifiers `<prefix><number:07d>`; number -1 renders as None."""

    prefix: str
    numbers: np.ndarray


@dataclass(frozen=True)
class Days:
    """Days since the epoch, rendered as ISO dates."""

    days: np.ndarray


@dataclass(frozen=True)
class Times:
    """Milliseconds since the epoch, rendered as ISO UTC timestamps."""

    ms: np.ndarray


@dataclass(frozen=True)
class Nullable:
    """Floats where NaN renders as None."""

    values: np.ndarray


@dataclass(frozen=True)
class Const:
    value: Any


Column = np.ndarray | Coded | Ids | Days | Times | Nullable | Const | list


def iso_times(ms: np.ndarray) -> list[str]:
    return np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms", timezone="UTC").tolist()


@lru_cache
def _dict_maker(keys: tuple[str, ...]) -> Callable[..., dict[str, Any]]:
    """A function building {keys[0]: a0, keys[1]: a1, ...}.

    A dict display runs about twice as fast as dict(zip(keys, values)), and rendering
    dicts is most of the cost of a million events. Keys are this module's property names.
    """
    if not all(k.isidentifier() for k in keys):
        raise ValueError(f"property names must be identifiers: {keys}")
    args = ", ".join(f"a{i}" for i in range(len(keys)))
    body = ", ".join(f"{k!r}: a{i}" for i, k in enumerate(keys))
    return eval(f"lambda {args}: {{{body}}}")  # noqa: S307 - built from checked identifiers only


def _take(col: Column, rows: np.ndarray) -> list[Any]:
    if isinstance(col, np.ndarray):
        return col[rows].tolist()
    if isinstance(col, Coded):
        vocab = [*col.vocab, None]  # code -1 picks the trailing None
        return [vocab[c] for c in col.codes[rows].tolist()]
    if isinstance(col, Ids):
        p = col.prefix
        return [f"{p}{n:07d}" if n >= 0 else None for n in col.numbers[rows].tolist()]
    if isinstance(col, Days):
        return np.datetime_as_string(col.days[rows].astype("datetime64[D]")).tolist()
    if isinstance(col, Times):
        return iso_times(col.ms[rows])
    if isinstance(col, Nullable):
        return [None if v != v else v for v in col.values[rows].tolist()]
    if isinstance(col, Const):
        return [col.value] * len(rows)
    return [col[i] for i in rows.tolist()]


def _concat(parts: list[Column]) -> Column:
    first = parts[0]
    if len(parts) == 1:
        return first
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)  # type: ignore[arg-type]
    if isinstance(first, Coded):
        return Coded(np.concatenate([p.codes for p in parts]), first.vocab)  # type: ignore[union-attr]
    if isinstance(first, Ids):
        return Ids(first.prefix, np.concatenate([p.numbers for p in parts]))  # type: ignore[union-attr]
    if isinstance(first, Days):
        return Days(np.concatenate([p.days for p in parts]))  # type: ignore[union-attr]
    if isinstance(first, Times):
        return Times(np.concatenate([p.ms for p in parts]))  # type: ignore[union-attr]
    if isinstance(first, Nullable):
        return Nullable(np.concatenate([p.values for p in parts]))  # type: ignore[union-attr]
    if isinstance(first, Const):
        if any(p != first for p in parts):
            raise ValueError("chunks of one event type disagree on a constant property")
        return first
    return [v for p in parts for v in p]  # type: ignore[union-attr]


@dataclass
class _Chunk:
    ts: np.ndarray
    user: np.ndarray
    item: np.ndarray
    props: dict[str, Column]


class EventBuffer:
    """Collects events column-wise, one chunk per call, while the simulation runs."""

    def __init__(self) -> None:
        self._chunks: dict[str, list[_Chunk]] = defaultdict(list)

    def add(
        self, event_type: str, *, ts: np.ndarray, user: np.ndarray, item: np.ndarray | None = None, **props: Column
    ) -> None:
        if event_type not in EVENT_ORDER:
            raise ValueError(f"unknown event type {event_type!r}")
        n = len(ts)
        if n == 0:
            return
        item_rows = np.full(n, -1, dtype=np.int32) if item is None else np.asarray(item, dtype=np.int32)
        self._chunks[event_type].append(
            _Chunk(np.asarray(ts, dtype=np.int64), np.asarray(user, dtype=np.int32), item_rows, props)
        )

    def freeze(self, *, until: int) -> "EventColumns":
        """All events before `until` (ms): what a snapshot taken then holds; later ones are dropped."""
        per_type: list[TypeColumns] = []
        for event_type in EVENT_ORDER:
            chunks = self._chunks.get(event_type, [])
            if not chunks:
                continue
            keys = list(chunks[0].props)
            per_type.append(
                TypeColumns(
                    event_type=event_type,
                    ts=np.concatenate([c.ts for c in chunks]),
                    user=np.concatenate([c.user for c in chunks]),
                    item=np.concatenate([c.item for c in chunks]),
                    props={k: _concat([c.props[k] for c in chunks]) for k in keys},
                )
            )
        return EventColumns(per_type, until=until)


@dataclass(frozen=True)
class TypeColumns:
    event_type: str
    ts: np.ndarray
    user: np.ndarray
    item: np.ndarray
    props: dict[str, Column]

    def __len__(self) -> int:
        return len(self.ts)

    def properties(self, rows: np.ndarray) -> list[dict[str, Any]]:
        keys = list(self.props)
        if not keys:
            return [{} for _ in range(len(rows))]
        values = [_take(col, rows) for col in self.props.values()]
        return list(map(_dict_maker(tuple(keys)), *values))


class EventColumns:
    """All events of a simulation before `until`, sorted by time (ties keep causal type order)."""

    def __init__(self, per_type: list[TypeColumns], *, until: int) -> None:
        self.per_type = per_type
        empty = np.zeros(0, dtype=np.int64)
        ts = np.concatenate([t.ts for t in per_type]) if per_type else empty
        code = (
            np.concatenate([np.full(len(t), k, dtype=np.int8) for k, t in enumerate(per_type)]) if per_type else empty
        )
        row = np.concatenate([np.arange(len(t)) for t in per_type]) if per_type else empty
        order = np.argsort(ts, kind="stable")
        order = order[ts[order] < until]
        self.ts = ts[order]
        self.type_code = code[order]
        self.row = row[order]
        self.user = (np.concatenate([t.user for t in per_type]) if per_type else empty)[order]
        self.item = (np.concatenate([t.item for t in per_type]) if per_type else empty)[order]

    def __len__(self) -> int:
        return len(self.ts)

    def counts(self) -> dict[str, int]:
        per_code = np.bincount(self.type_code, minlength=len(self.per_type))
        return {t.event_type: int(c) for t, c in zip(self.per_type, per_code, strict=True) if c}

    def render(
        self, lo: int, hi: int, *, user_ids: Sequence[str], item_ids: Sequence[str], event_ids: list[str]
    ) -> list[dict[str, Any]]:
        """Envelope dicts of events lo..hi in time order; `event_ids` are those same positions' ids."""
        codes = self.type_code[lo:hi]
        rows = self.row[lo:hi]
        props = np.empty(hi - lo, dtype=object)
        types = np.empty(hi - lo, dtype=object)
        for code in np.unique(codes).tolist():
            at = np.flatnonzero(codes == code)
            tc = self.per_type[code]
            rendered = np.empty(len(at), dtype=object)
            rendered[:] = tc.properties(rows[at])
            props[at] = rendered
            types[at] = tc.event_type
        users = np.array([*user_ids, None], dtype=object)[self.user[lo:hi]]  # -1 picks None
        items = np.array([*item_ids, None], dtype=object)[self.item[lo:hi]]
        return list(
            map(
                _dict_maker(("event_id", "event_type", "user_id", "item_id", "occurred_at", "properties")),
                event_ids,
                types.tolist(),
                users.tolist(),
                items.tolist(),
                iso_times(self.ts[lo:hi]),
                props.tolist(),
            )
        )


def uuid_strings(raw: np.ndarray) -> list[str]:
    """Random-UUID strings (version 4 layout) from an (n, 16) uint8 array of random bytes."""
    raw = raw.copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = np.frombuffer(raw.tobytes().hex().encode(), dtype=np.uint8).reshape(-1, 32)
    out = np.full((len(raw), 36), ord("-"), dtype=np.uint8)
    for dst, src in ((0, 0), (9, 8), (14, 12), (19, 16), (24, 20)):
        width = {0: 8, 9: 4, 14: 4, 19: 4, 24: 12}[dst]
        out[:, dst : dst + width] = hexed[:, src : src + width]
    return out.view("S36").ravel().astype("U36").tolist()
