"""The recommendable items in memory: attributes as arrays the rules read in one pass, and the popularity
order fallback answers use. Rebuilt (and swapped whole) when items are published."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from features.schema import CATEGORY_INTENSITY, LEVELS, NO_EQUIPMENT
from platform_api.catalogue.service import Item

# A trainer's item counts as new for this long after it is published.
NEW_FOR = timedelta(days=14)
LEVEL_ORD = {level: i for i, level in enumerate(LEVELS)}
# The attribute columns the model's content-based source describes items by (Item.as_row names).
ATTRIBUTES = ("item_type", "category", "level", "goal", "equipment", "muscles", "duration_min")


def intensity(category: str, level: str) -> float:
    """How demanding an item is, in [0, 1]: as features.transforms.item_catalogue computes item_intensity."""
    return min(1.0, max(0.0, CATEGORY_INTENSITY.get(category, 0.5) + 0.15 * (LEVEL_ORD.get(level, 0) - 1)))


class Catalogue:
    def __init__(self, items: Sequence[Item], popularity: dict[str, float], *, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        self.items = list(items)
        self.by_id = {i.item_id: i for i in self.items}
        self.popularity = popularity
        self.ids = np.asarray([i.item_id for i in self.items], dtype=object)
        self.position = pd.Index(self.ids)
        self.category = np.asarray([i.category for i in self.items], dtype=object)
        self.level = np.asarray([LEVEL_ORD.get(i.level, 0) for i in self.items], dtype=np.int64)
        self.premium = np.asarray([i.premium for i in self.items], dtype=bool)
        self.intensity = np.asarray([intensity(i.category, i.level) for i in self.items], dtype=np.float64)
        # Each kind of equipment is one bit; "body only" and "none" need nothing.
        kinds = sorted({e for i in self.items for e in i.equipment} - NO_EQUIPMENT)
        self.equipment_bit = {kind: 1 << b for b, kind in enumerate(kinds)}
        self.needs = np.asarray([self.equipment_mask(i.equipment) for i in self.items], dtype=np.int64)
        self.new = np.asarray(
            [
                i.trainer_id is not None and i.published_at is not None and now - _utc(i.published_at) <= NEW_FOR
                for i in self.items
            ],
            dtype=bool,
        )
        self.ranked = sorted(self.by_id, key=lambda i: (-popularity.get(i, 0.0), i))
        self.popularity_order = self.position.get_indexer(self.ranked)

    def equipment_mask(self, names: Sequence[str]) -> int:
        """The bits of the equipment named (kinds no item needs, and body only / none, have no bit)."""
        mask = 0
        for name in names:
            mask |= self.equipment_bit.get(name, 0)
        return mask

    def positions(self, item_ids: Sequence[str]) -> np.ndarray:
        return self.position.get_indexer(list(item_ids))

    def candidates(self, n: int) -> list[str]:
        """The n most popular items (the candidates of a model without candidate sources)."""
        return self.ranked[:n]

    def attributes(self, item_ids: Sequence[str]) -> pd.DataFrame:
        """Attribute rows (indexed by item id) of items, as the model's content source reads them."""
        rows = [self.by_id[i].as_row() for i in item_ids]
        frame = pd.DataFrame([{c: r[c] for c in ATTRIBUTES} for r in rows], index=pd.Index(list(item_ids)))
        for column in ("equipment", "muscles"):
            frame[column] = frame[column].map(list)
        return frame


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
