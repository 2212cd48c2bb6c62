"""Model versions over HTTP: the A/B split and a hot reload under steady load."""

import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from mlflow.tracking import MlflowClient
from support import TrainedStack, serve_app

from serving.app import create_app
from serving.config import ServingSettings
from serving.ranking.model_holder import ModelArms

NAME = "fitrec-ranker"


@pytest.fixture
def second_version(served_stack: TrainedStack) -> Iterator[tuple[MlflowClient, str, str]]:
    """A second registry version of the champion's model (same artifacts: a new version to move aliases to);
    the aliases are put back afterwards, as other tests share the stack."""
    uri = f"sqlite:///{served_stack.data_dir / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    aliases = {alias: client.get_model_version_by_alias(NAME, alias).version for alias in ("champion", "challenger")}
    first = client.get_model_version(NAME, aliases["champion"])
    source = client.get_model_version_download_uri(NAME, first.version)  # the artifacts' own location
    second = client.create_model_version(NAME, source=source, run_id=first.run_id)
    yield client, str(first.version), str(second.version)
    for alias, version in aliases.items():
        client.set_registered_model_alias(NAME, alias, version)


def _settings(stack: TrainedStack, **overrides: object) -> ServingSettings:
    values: dict[str, object] = {
        "FITREC_DATA_DIR": stack.data_dir,
        "model_refresh_s": 0,
    }
    values.update(overrides)
    return ServingSettings(**values)  # type: ignore[arg-type]


def test_ab_split_sends_a_stable_share_to_the_challenger(served_stack, second_version) -> None:  # type: ignore[no-untyped-def]
    client, champion, challenger = second_version
    client.set_registered_model_alias(NAME, "challenger", challenger)
    key = {"X-API-Key": served_stack.api_key}
    settings = _settings(served_stack, challenger_share=0.3, experiment="ranker-2026-12")
    split = ModelArms(tracking_uri="unused", name=NAME, challenger_share=0.3, experiment="ranker-2026-12")
    users = [f"u-{i:05d}" for i in range(1, served_stack.users + 1)] + [f"ab-new-{i}" for i in range(200)]
    with serve_app(create_app(settings)) as base, httpx.Client(base_url=base, headers=key, timeout=30) as http:
        model = http.get("/v1/model").json()
        assert model["experiment"] == "ranker-2026-12"
        assert model["arms"]["champion"] == {
            "alias": "champion",
            "version": f"v{champion}",
            "share": 0.7,
            "problem": None,
        }
        assert (
            model["arms"]["challenger"]["version"] == f"v{challenger}" and model["arms"]["challenger"]["share"] == 0.3
        )
        arms = {}
        for user in users:
            body = http.get(f"/v1/users/{user}/recommendations").json()
            arms[user] = body["arm"]
            # The arm is the split's (a hash of the experiment and the user), and its version serves it.
            assert body["arm"] == split.arm_of(user)
            assert body["model_version"] == f"v{challenger if body['arm'] == 'challenger' else champion}"
            assert body["count"] == 10 and body["fallback_reason"] is None
        share = Counter(arms.values())["challenger"] / len(users)
        assert 0.22 <= share <= 0.38, share
        for user in users[:40]:  # stable: the same arm again, now from the cache (the key holds version and arm)
            again = http.get(f"/v1/users/{user}/recommendations").json()
            assert again["arm"] == arms[user] and again["cached"] is True
    # Another experiment name splits users differently.
    other = ModelArms(tracking_uri="unused", name=NAME, challenger_share=0.3, experiment="another")
    assert sum(other.arm_of(u) != split.arm_of(u) for u in users) > len(users) // 5


def test_promoting_under_steady_load_swaps_versions_without_an_error(served_stack, second_version) -> None:  # type: ignore[no-untyped-def]
    client, champion, new = second_version
    key = {"X-API-Key": served_stack.api_key}
    settings = _settings(served_stack, model_refresh_s=1, cache_ttl_s=1)
    outcomes: Counter[str] = Counter()
    versions: list[tuple[float, str]] = []
    stop = threading.Event()

    def load(base: str, worker: int) -> None:
        with httpx.Client(base_url=base, headers=key, timeout=30) as http:
            n = 0
            while not stop.is_set():
                n += 1
                user = f"u-{(worker * 37 + n) % served_stack.users + 1:05d}"
                sent = time.monotonic()
                try:
                    answer = http.get(f"/v1/users/{user}/recommendations")
                except httpx.HTTPError as exc:
                    outcomes[f"transport:{type(exc).__name__}"] += 1
                    continue
                body = answer.json() if answer.status_code == 200 else {}
                if answer.status_code != 200 or body.get("fallback_reason") or body.get("count") != 10:
                    outcomes[f"bad:{answer.status_code}:{body.get('fallback_reason')}"] += 1
                    continue
                outcomes["ok"] += 1
                versions.append((sent, body["model_version"]))

    with serve_app(create_app(settings)) as base:
        workers = [threading.Thread(target=load, args=(base, w)) for w in range(4)]
        for worker in workers:
            worker.start()
        try:
            time.sleep(2)
            promoted_at = time.monotonic()
            client.set_registered_model_alias(NAME, "champion", new)
            deadline = promoted_at + 60
            while time.monotonic() < deadline and not (versions and versions[-1][1] == f"v{new}"):
                time.sleep(0.2)
            time.sleep(2)  # keep the load on after the swap
        finally:
            stop.set()
            for worker in workers:
                worker.join()
        served_now = httpx.get(f"{base}/v1/model").json()["arms"]["champion"]["version"]
    assert set(outcomes) == {"ok"}, outcomes  # not one failed or degraded answer
    versions.sort()  # by when each request was sent
    before = {v for t, v in versions if t < promoted_at}
    assert before == {f"v{champion}"} and versions[-1][1] == f"v{new}" and served_now == f"v{new}"
    swapped = next(t for t, v in versions if v == f"v{new}")
    # Requests in flight at the swap finish on the old model; any sent a moment later get the new one only.
    assert {v for t, v in versions if t > swapped + 0.5} == {f"v{new}"}
    assert outcomes["ok"] > 50
