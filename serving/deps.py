"""Dependency aliases of the serving routes."""

from typing import Annotated

from fastapi import Depends, Request

from serving.state import ServingState


async def get_state(request: Request) -> ServingState:
    state: ServingState = request.app.state.serving
    return state


StateDep = Annotated[ServingState, Depends(get_state)]
