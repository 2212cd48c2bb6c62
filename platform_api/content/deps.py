"""The object store of the running app, opened once from its settings."""

from typing import Annotated

from fastapi import Depends, Request

from platform_api.deps import get_platform
from platform_api.storage.base import ObjectStore
from platform_api.storage.factory import open_object_store


def get_object_store(request: Request) -> ObjectStore:
    store: ObjectStore | None = getattr(request.app.state, "object_store", None)
    if store is None:
        settings = get_platform(request).settings
        store = open_object_store(settings.object_store_url, s3_endpoint_url=settings.s3_endpoint_url)
        request.app.state.object_store = store
    return store


ObjectStoreDep = Annotated[ObjectStore, Depends(get_object_store)]
