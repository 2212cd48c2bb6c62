"""Which gateway serves which region, in fallback order, and building them from settings."""

from dataclasses import dataclass

import httpx

from platform_api.config import PlatformSettings
from platform_api.errors import ApiError
from platform_api.payments.gateways.base import PaymentGateway
from platform_api.payments.gateways.regional import RegionalGateway
from platform_api.payments.gateways.sandbox import SandboxGateway
from platform_api.payments.gateways.stripe_gateway import StripeGateway
from platform_api.payments.products import EU

STRIPE_REGIONS = frozenset({"US"}) | EU
# Live routing: Stripe for the US and the EU; elsewhere the regional provider first, Stripe as fallback.
ROUTE_STRIPE = ("stripe",)
ROUTE_OTHER = ("regional", "stripe")


def live_route(region: str) -> tuple[str, ...]:
    return ROUTE_STRIPE if region.upper() in STRIPE_REGIONS else ROUTE_OTHER


@dataclass
class Gateways:
    by_name: dict[str, PaymentGateway]
    sandbox: bool

    def route(self, region: str) -> list[PaymentGateway]:
        """The gateways to try for a region, in order; every region goes to the sandbox when it is on."""
        names = ("sandbox",) if self.sandbox else live_route(region)
        return [self.by_name[n] for n in names if n in self.by_name]

    def get(self, name: str) -> PaymentGateway:
        gateway = self.by_name.get(name)
        if gateway is None:
            raise ApiError(404, f"no payment gateway {name!r}")
        return gateway


def build_gateways(settings: PlatformSettings, *, http_client: httpx.Client | None = None) -> Gateways:
    tolerance = settings.webhook_tolerance_s
    if settings.payment_mode == "sandbox":
        sandbox = SandboxGateway(
            webhook_secret=settings.sandbox_webhook_secret.get_secret_value(), tolerance_s=tolerance
        )
        return Gateways(by_name={"sandbox": sandbox}, sandbox=True)
    stripe_gw = StripeGateway(
        api_key=settings.stripe_api_key.get_secret_value(),
        webhook_secret=settings.stripe_webhook_secret.get_secret_value(),
        tolerance_s=tolerance,
    )
    regional = RegionalGateway(
        base_url=settings.regional_gateway_url,
        api_key=settings.regional_api_key.get_secret_value(),
        webhook_secret=settings.regional_webhook_secret.get_secret_value(),
        tolerance_s=tolerance,
        client=http_client,
    )
    return Gateways(by_name={"stripe": stripe_gw, "regional": regional}, sandbox=False)
