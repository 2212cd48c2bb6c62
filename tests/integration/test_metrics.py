"""`/metrics` over HTTP: every family the operations need, with values that follow what the app did."""

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from support import TrainedStack, running_worker, serve_app

from serving.app import create_app
from serving.config import ServingSettings

Samples = list[tuple[str, dict[str, str], float]]


def scrape(client: httpx.Client) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return [(s.name, s.labels, s.value) for f in text_string_to_metric_families(answer.text) for s in f.samples]


def labelled(samples: Samples, name: str) -> list[tuple[dict[str, str], float]]:
    return [(labels, number) for got, labels, number in samples if got == name]


def value(samples: Samples, name: str, **labels: str) -> float:
    """The value of the sample of that name with those labels (0 when absent)."""
    for got, number in labelled(samples, name):
        if all(got.get(k) == v for k, v in labels.items()):
            return number
    return 0.0


def test_metrics_expose_latency_answers_models_freshness_and_jobs(served_stack: TrainedStack) -> None:
    settings = ServingSettings(FITREC_DATA_DIR=served_stack.data_dir, model_refresh_s=0, signal_poll_s=0)
    key = {"X-API-Key": served_stack.api_key}
    with (
        running_worker(served_stack.data_dir, jobs={"heartbeat": ("* * * * * *", lambda _settings: {"beat": 1})}),
        serve_app(create_app(settings)) as url,
        httpx.Client(base_url=url, timeout=30) as client,
    ):
        before = scrape(client)
        for user in ("u-00011", "u-00012", "u-00013"):
            for _ in range(3):  # ranked once, then twice from the cache
                assert client.get(f"/v1/users/{user}/recommendations", headers=key).status_code == 200
        assert client.get("/v1/users/u-00011/recommendations?k=500", headers=key).status_code == 422
        deadline = time.monotonic() + 30
        while True:
            after = scrape(client)
            if (
                value(after, "fitrec_job_last_success_timestamp_seconds", job="heartbeat")
                or time.monotonic() > deadline
            ):
                break
            time.sleep(0.5)

    def delta(source: str) -> float:
        name = "fitrec_recommendations_total"
        return value(after, name, source=source, arm="champion") - value(before, name, source=source, arm="champion")

    assert (delta("ranked"), delta("cache")) == (3, 6)
    assert value(after, "fitrec_cache_hit_ratio") > 0.5
    route = "/v1/users/{user_id}/recommendations"
    counts = {
        (labels["route"], labels["status"]): number
        for labels, number in labelled(after, "fitrec_http_request_duration_seconds_count")
    }
    assert counts[(route, "200")] >= 9
    assert counts[(route, "422")] >= 1
    assert all(label != "/v1/users/u-00011/recommendations" for label, _ in counts)  # templates, not raw paths
    assert value(after, "fitrec_model_version", arm="champion", alias="champion") >= 1
    views = {labels["view"]: number for labels, number in labelled(after, "fitrec_feature_age_seconds")}
    assert views and all(age >= 0 for age in views.values())
    assert time.time() - value(after, "fitrec_job_last_success_timestamp_seconds", job="heartbeat") < 60
    assert value(after, "fitrec_job_last_duration_seconds", job="heartbeat", status="ok") >= 0
    assert {labels["source"]: number for labels, number in labelled(after, "fitrec_metrics_source_up")} == {
        "registry": 1.0,
        "features": 1.0,
        "database": 1.0,
    }


def test_fallbacks_are_counted_by_cause(served_stack: TrainedStack, tmp_path: Path) -> None:
    """With an empty registry popularity answers, and the cause is counted."""
    settings = ServingSettings(
        FITREC_DATA_DIR=served_stack.data_dir,
        MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'empty-mlflow.db'}",
        model_refresh_s=0,
        signal_poll_s=0,
    )
    with serve_app(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(2):
            body = client.get("/v1/users/u-00021/recommendations", headers={"X-API-Key": served_stack.api_key}).json()
            assert body["fallback_reason"] == "model_unavailable"
        after = scrape(client)
    fallbacks = {labels["reason"]: n for labels, n in labelled(after, "fitrec_recommendation_fallbacks_total")}
    assert fallbacks == {"model_unavailable": 2.0}
    assert not labelled(after, "fitrec_model_version")  # no model loaded
