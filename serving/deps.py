"""Dependency aliases of the serving routes."""

from typing import Annotated

from fastapi import Depends, Request

from serving.recommend import Recommender
from serving.state import ServingState


def get_state(request: Request) -> ServingState:
    state: ServingState = request.app.state.serving
    return state


def get_recommender(request: Request) -> Recommender:
    return get_state(request).recommender


StateDep = Annotated[ServingState, Depends(get_state)]
RecommenderDep = Annotated[Recommender, Depends(get_recommender)]
