"""Pure logic of the platform: units, calories, scores, streaks, cursors, signatures, sniffing, encryption,
Fitbit dates, gateways over HTTP (mock transport) and routing."""

import json
import time
from datetime import date, datetime

import httpx
import pytest

from platform_api.content.media import sniff
from platform_api.errors import ApiError
from platform_api.health.crypto import InvalidToken, TokenCipher
from platform_api.health.fitbit import RowError, parse_timestamp
from platform_api.health.units import UnitError, normalise
from platform_api.pagination import decode_cursor, encode_cursor
from platform_api.payments.gateways.base import (
    GatewayDeclined,
    GatewayUnavailable,
    InvalidWebhook,
    PaymentRequest,
)
from platform_api.payments.gateways.generic import build_event
from platform_api.payments.gateways.regional import RegionalGateway
from platform_api.payments.gateways.routing import live_route
from platform_api.payments.gateways.signing import sign, verify
from platform_api.payments.gateways.stripe_gateway import StripeGateway
from platform_api.payments.products import currency_for
from platform_api.workouts.achievements import current_streak, earned, longest_streak
from platform_api.workouts.calories import SetWork, calories
from platform_api.workouts.scoring import performance_score


@pytest.mark.parametrize(
    ("metric", "value", "unit", "expected"),
    [
        ("weight", 180, "lb", ("weight_kg", 81.65)),
        ("weight", 12, "st", ("weight_kg", 76.2)),
        ("weight", 70500, "g", ("weight_kg", 70.5)),
        ("weight", 70, None, ("weight_kg", 70)),
        ("sleep", 7.5, "h", ("sleep_minutes", 450)),
        ("sleep", 5400, "seconds", ("sleep_minutes", 90)),
        ("active_time", 0.5, "hours", ("active_minutes", 30)),
        ("steps", 1234.4, "steps", ("steps", 1234)),
        ("resting_hr", 58, "BPM", ("resting_hr", 58)),
    ],
)
def test_unit_normalisation(metric: str, value: float, unit: str | None, expected: tuple[str, float]) -> None:
    field, converted = normalise(metric, value, unit)
    assert field == expected[0] and converted == pytest.approx(expected[1], abs=0.01)


def test_unknown_units_are_refused() -> None:
    for metric, unit in [("weight", "h"), ("sleep", "kg"), ("steps", "km")]:
        with pytest.raises(UnitError):
            normalise(metric, 1, unit)


def test_calories_follow_the_met_table() -> None:
    # 60 minutes at 70 kg: MET × 70 kcal.
    assert calories([SetWork("stretching", 0, 600, None)], duration_min=60, weight_kg=70) == pytest.approx(2.3 * 70)
    assert calories([SetWork("strength", 10, 0, 5)], duration_min=60, weight_kg=70) == pytest.approx(3.5 * 70)
    assert calories([SetWork("strength", 10, 0, 8)], duration_min=60, weight_kg=70) == pytest.approx(6.0 * 70)
    # Time splits by working seconds: 60 s of plyometrics (MET 8) and 3 × 20 reps of strength = 180 s (MET 3.5).
    mixed = calories(
        [SetWork("plyometrics", 0, 60, None), SetWork("strength", 60, 0, None)], duration_min=40, weight_kg=80
    )
    assert mixed == pytest.approx((8.0 * 0.25 + 3.5 * 0.75) * 80 * 40 / 60, abs=0.1)
    assert calories([], duration_min=30, weight_kg=None, fallback_category="cardio") == pytest.approx(7.3 * 70 / 2)


def test_performance_score() -> None:
    full = performance_score(total_sets=18, mean_rpe=7.5, duration_min=45, planned_exercises=6, planned_minutes=45)
    assert full == 100
    half = performance_score(total_sets=9, mean_rpe=7.5, duration_min=45, planned_exercises=6, planned_minutes=45)
    assert half == 75
    assert (
        performance_score(total_sets=0, mean_rpe=None, duration_min=0.1, planned_exercises=None, planned_minutes=None)
        == 15
    )
    easy = performance_score(total_sets=18, mean_rpe=2.5, duration_min=45, planned_exercises=6, planned_minutes=45)
    assert easy == 70


def test_streaks_and_rules() -> None:
    days = [date(2026, 5, d) for d in (1, 2, 3, 5, 6)]
    assert current_streak(days, today=date(2026, 5, 6)) == 2
    assert current_streak(days, today=date(2026, 5, 7)) == 2  # yesterday counts until a day is missed
    assert current_streak(days, today=date(2026, 5, 8)) == 0
    assert longest_streak(days) == 3 and longest_streak([]) == 0
    assert earned(completed=1, streak=1) == ["first_workout"]
    assert set(earned(completed=10, streak=7)) == {"first_workout", "workouts_10", "streak_3", "streak_7"}


def test_cursor_round_trip_and_garbage() -> None:
    cursor = encode_cursor(["2026-01-01T00:00:00+00:00", "abc"])
    assert decode_cursor(cursor, size=2) == ["2026-01-01T00:00:00+00:00", "abc"]
    assert decode_cursor(None, size=1) is None
    for bad in ("%%%", encode_cursor(["one"]), "e30"):  # not base64, wrong size, not a list
        with pytest.raises(ApiError) as err:
            decode_cursor(bad, size=2)
        assert err.value.status == 400


def test_hmac_signatures() -> None:
    body, secret = b'{"id": "evt_1"}', "s3cret"
    now = time.time()
    header = sign(body, secret, timestamp=int(now))
    assert verify(body, {"Webhook-Signature": header}, secret, tolerance_s=300, now=now) == int(now)
    assert verify(body, {"webhook-signature": header}, secret, tolerance_s=300, now=now)  # header names fold case
    for headers, text, payload in [
        ({}, "missing", body),
        ({"Webhook-Signature": "garbage"}, "malformed", body),
        ({"Webhook-Signature": header}, "does not match", body + b" "),
        ({"Webhook-Signature": sign(body, "other", timestamp=int(now))}, "does not match", body),
        ({"Webhook-Signature": sign(body, secret, timestamp=int(now) - 301)}, "tolerance", body),
        ({"Webhook-Signature": sign(body, secret, timestamp=int(now) + 301)}, "tolerance", body),
    ]:
        with pytest.raises(InvalidWebhook, match=text):
            verify(payload, headers, secret, tolerance_s=300, now=now)


def test_media_types_come_from_the_bytes() -> None:
    mp4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64
    assert sniff(mp4, kind="video") == ("video/mp4", "mp4")
    assert sniff(b"%PDF-1.7\n" + b"x" * 64, kind="article")[0] == "application/pdf"
    for head, kind in [(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "video"), (mp4, "article"), (b"plain text" * 9, "video")]:
        with pytest.raises(ApiError) as err:
            sniff(head, kind=kind)
        assert err.value.status == 415


def test_token_cipher() -> None:
    cipher = TokenCipher("a key from settings")
    token = cipher.encrypt("secret-token")
    assert b"secret-token" not in token and cipher.decrypt(token) == "secret-token"
    assert cipher.encrypt("secret-token") != token  # random IV: equal tokens do not look equal at rest
    with pytest.raises(InvalidToken):
        TokenCipher("another key").decrypt(token)
    with pytest.raises(InvalidToken):
        cipher.decrypt(token[:-2] + b"AA")


def test_fitbit_dates() -> None:
    assert parse_timestamp("4/12/2016") == datetime(2016, 4, 12)
    assert parse_timestamp("5/2/2016 11:59:59 PM") == datetime(2016, 5, 2, 23, 59, 59)
    assert parse_timestamp("4/13/2016 12:08:52 AM") == datetime(2016, 4, 13, 0, 8, 52)
    for bad in ("2016-04-12", "13/1/2016", "4/12/16", ""):
        with pytest.raises(RowError):
            parse_timestamp(bad)


def test_routing_by_region() -> None:
    assert live_route("US") == ("stripe",) and live_route("de") == ("stripe",)
    assert live_route("IN") == ("regional", "stripe") and live_route("GB") == ("regional", "stripe")
    assert (currency_for("US"), currency_for("FR"), currency_for("GB"), currency_for("IN")) == (
        "USD",
        "EUR",
        "GBP",
        "USD",
    )


REQUEST = PaymentRequest(payment_id="p-1", user_id="u-1", amount_cents=999, currency="USD", description="x")


def regional(handler: httpx.MockTransport) -> RegionalGateway:
    return RegionalGateway(
        base_url="https://psp.test/v1",
        api_key="k",
        webhook_secret="whs",
        tolerance_s=300,
        client=httpx.Client(transport=handler),
    )


def test_regional_gateway_over_http() -> None:
    seen: list[httpx.Request] = []

    def ok(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": "rp_9", "status": "pending", "client_secret": "cs_9"})

    created = regional(httpx.MockTransport(ok)).create_payment(REQUEST)
    assert (created.external_id, created.client_secret) == ("rp_9", "cs_9")
    assert seen[0].headers["Idempotency-Key"] == "p-1" and seen[0].headers["Authorization"] == "Bearer k"
    assert json.loads(seen[0].content)["reference"] == "p-1"
    with pytest.raises(GatewayUnavailable):
        regional(httpx.MockTransport(lambda r: httpx.Response(503))).create_payment(REQUEST)
    with pytest.raises(GatewayDeclined):
        regional(httpx.MockTransport(lambda r: httpx.Response(402, json={"error": "declined"}))).create_payment(REQUEST)

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(GatewayUnavailable):
        regional(httpx.MockTransport(unreachable)).create_payment(REQUEST)
    body = build_event(
        event_id="evt_r",
        event_type="payment.failed",
        external_id="rp_9",
        payment_id="p-1",
        created=int(time.time()),
        reason="insufficient_funds",
    )
    event = regional(httpx.MockTransport(ok)).parse_webhook(body, {"Webhook-Signature": sign(body, "whs")})
    assert (event.kind, event.payment_id, event.external_id, event.reason) == (
        "failed",
        "p-1",
        "rp_9",
        "insufficient_funds",
    )


def test_stripe_signature_verification_is_local() -> None:
    import stripe

    gateway = StripeGateway(api_key="sk_test_x", webhook_secret="whsec_x", tolerance_s=300)
    payload = json.dumps(
        {
            "id": "evt_s",
            "object": "event",
            "type": "payment_intent.succeeded",
            "created": 1,
            "data": {"object": {"id": "pi_1", "metadata": {"fitrec_payment_id": "p-1"}}},
        }
    )
    header = stripe.WebhookSignature.generate_signature_header(payload, "whsec_x")
    event = gateway.parse_webhook(payload.encode(), {"Stripe-Signature": header})
    assert (event.event_id, event.kind, event.payment_id, event.external_id) == ("evt_s", "succeeded", "p-1", "pi_1")
    stale = stripe.WebhookSignature.generate_signature_header(payload, "whsec_x", timestamp=int(time.time()) - 301)
    for headers in ({}, {"Stripe-Signature": header.replace("v1=", "v1=0")}, {"Stripe-Signature": stale}):
        with pytest.raises(InvalidWebhook):
            gateway.parse_webhook(payload.encode(), headers)
