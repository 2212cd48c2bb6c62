"""Catalogue service: seed from the exercise catalogue, list the recommendable items."""

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from sqlalchemy import select
from sqlalchemy.orm import Session

from platform_api.catalogue.build import Catalogue, ContentSpec, PlanSpec, build_catalogue
from platform_api.catalogue.tables import ContentItem, WorkoutPlan
from platform_api.events.ingest import store_events
from platform_api.events.schemas import EventIn

# Equipment that needs nothing at hand.
NO_EQUIPMENT = frozenset({"body only", "none"})


@dataclass(frozen=True)
class Item:
    """One recommendable item, plan or content, in the shape models and features use."""

    item_id: str
    item_type: str  # plan | exercise_guide | video | article
    title: str
    category: str
    level: str
    goal: str | None
    equipment: tuple[str, ...]
    muscles: tuple[str, ...]
    duration_min: int
    premium: bool
    trainer_id: str | None = None  # who published it (None: the catalogue's own)
    published_at: datetime | None = None

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SeedResult:
    content_items: int
    plans: int
    created: int


def seed_catalogue(session: Session, *, catalogue: Catalogue | None = None) -> SeedResult:
    """Insert catalogue items that are missing (idempotent); emits content.ready for new content."""
    catalogue = catalogue or build_catalogue()
    now = datetime.now(UTC)
    have_content = set(session.scalars(select(ContentItem.id)))
    have_plans = set(session.scalars(select(WorkoutPlan.id)))
    new_content = [c for c in catalogue.content if c.id not in have_content]
    new_plans = [p for p in catalogue.plans if p.id not in have_plans]
    session.add_all(ContentItem(**asdict(c), status="ready", source="catalogue", created_at=now) for c in new_content)
    session.add_all(WorkoutPlan(**asdict(p), created_at=now) for p in new_plans)
    store_events(
        session,
        events=[
            EventIn(
                event_id=uuid5(NAMESPACE_URL, f"fitrec:content.ready:{c.id}"),
                event_type="content.ready",
                user_id=None,
                item_id=c.id,
                occurred_at=now,
                properties={"kind": c.kind},
            )
            for c in new_content
        ],
    )
    session.commit()
    return SeedResult(len(catalogue.content), len(catalogue.plans), len(new_content) + len(new_plans))


def _plan_item(p: WorkoutPlan | PlanSpec) -> Item:
    return Item(
        item_id=p.id,
        item_type="plan",
        title=p.title,
        category=p.category,
        level=p.level,
        goal=p.goal,
        equipment=tuple(p.equipment),
        muscles=tuple(p.muscles),
        duration_min=p.minutes_per_session,
        premium=p.premium,
        trainer_id=getattr(p, "trainer_id", None),
        published_at=getattr(p, "created_at", None) if getattr(p, "trainer_id", None) else None,
    )


def _content_item(c: ContentItem | ContentSpec) -> Item:
    return Item(
        item_id=c.id,
        item_type=c.kind,
        title=c.title,
        category=c.category,
        level=c.level,
        goal=None,
        equipment=tuple(c.equipment),
        muscles=tuple(c.primary_muscles),
        duration_min=c.duration_min,
        premium=c.premium,
        trainer_id=getattr(c, "trainer_id", None),
        # When a trainer's item went live (media uploaded); the catalogue's own items are not "new".
        published_at=(getattr(c, "updated_at", None) or getattr(c, "created_at", None))
        if getattr(c, "trainer_id", None)
        else None,
    )


def list_items(session: Session) -> list[Item]:
    """Every ready item, plans first, in a stable order."""
    plans = session.scalars(select(WorkoutPlan).order_by(WorkoutPlan.id))
    content = session.scalars(select(ContentItem).where(ContentItem.status == "ready").order_by(ContentItem.id))
    return [_plan_item(p) for p in plans] + [_content_item(c) for c in content]


def get_items(session: Session, *, item_ids: Iterable[str]) -> list[Item]:
    """The ready items among `item_ids` (unknown or not-ready ids left out), in `list_items` order."""
    ids = list(dict.fromkeys(item_ids))
    if not ids:
        return []
    plans = session.scalars(select(WorkoutPlan).where(WorkoutPlan.id.in_(ids)).order_by(WorkoutPlan.id))
    content = session.scalars(
        select(ContentItem).where(ContentItem.id.in_(ids), ContentItem.status == "ready").order_by(ContentItem.id)
    )
    return [_plan_item(p) for p in plans] + [_content_item(c) for c in content]


def catalogue_items(catalogue: Catalogue | None = None) -> list[Item]:
    """The items `seed_catalogue` would store, in `list_items` order, without a database."""
    catalogue = catalogue or build_catalogue()
    return [_plan_item(p) for p in sorted(catalogue.plans, key=lambda p: p.id)] + [
        _content_item(c) for c in sorted(catalogue.content, key=lambda c: c.id)
    ]
