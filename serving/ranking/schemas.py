"""What the ranking path returns per item (also the items of the API's RecommendationsPublic)."""

from pydantic import BaseModel, Field


class ContributionPublic(BaseModel):
    feature: str
    value: float | None = Field(description="the feature's value for this user and item (null: missing)")
    contribution: float = Field(description="how much it moved the ranker's score (the ranker's own attribution)")


class RecommendationPublic(BaseModel):
    item_id: str
    item_type: str
    title: str
    score: float | None = Field(
        description="the ranker's relevance score; null for items filled in from popularity, which it did not score"
    )
    reason: str = Field(description="why this item, in plain words, true for this user")
    explanation: list[ContributionPublic] | None = Field(
        None, description="with explain=true: the largest contributions to the score, with the features' values"
    )
