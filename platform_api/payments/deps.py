"""The payment gateways of the running app, built once from its settings."""

from typing import Annotated

from fastapi import Depends, Request

from platform_api.deps import get_platform
from platform_api.payments.gateways.routing import Gateways, build_gateways


def get_gateways(request: Request) -> Gateways:
    gateways: Gateways | None = getattr(request.app.state, "payment_gateways", None)
    if gateways is None:
        gateways = build_gateways(get_platform(request).settings)
        request.app.state.payment_gateways = gateways
    return gateways


GatewaysDep = Annotated[Gateways, Depends(get_gateways)]
