"""What can be bought: subscription plans and credit packs, priced per currency."""

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

# EU member states pay in euros and are served by Stripe like the US.
EU = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
    ]
)
CURRENCY_BY_REGION = {"US": "USD", "GB": "GBP", **dict.fromkeys(EU, "EUR")}


@dataclass(frozen=True)
class Product:
    code: str
    kind: Literal["subscription", "credits"]
    title: str
    prices: dict[str, int] = field(default_factory=dict)  # currency -> amount in cents
    period: timedelta | None = None  # subscriptions
    credits: int = 0  # credit packs

    def price(self, currency: str) -> int:
        return self.prices.get(currency, self.prices["USD"])


PRODUCTS: dict[str, Product] = {
    p.code: p
    for p in (
        Product(
            "premium_monthly",
            "subscription",
            "fitrec Premium, monthly",
            {"USD": 999, "EUR": 999, "GBP": 899},
            period=timedelta(days=30),
        ),
        Product(
            "premium_yearly",
            "subscription",
            "fitrec Premium, yearly",
            {"USD": 7999, "EUR": 7999, "GBP": 6999},
            period=timedelta(days=365),
        ),
        Product(
            "credits_50",
            "credits",
            "50 credits to unlock premium items one by one",
            {"USD": 499, "EUR": 499, "GBP": 449},
            credits=50,
        ),
    )
}
ProductCode = Literal["premium_monthly", "premium_yearly", "credits_50"]


def currency_for(region: str) -> str:
    return CURRENCY_BY_REGION.get(region.upper(), "USD")
