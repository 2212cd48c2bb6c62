"""What the ranking path returns per item (also the items of the API's RecommendationsPublic)."""

from pydantic import BaseModel


class RecommendationPublic(BaseModel):
    item_id: str
    item_type: str
    title: str
    score: float
    reason: str
