"""Prometheus `/metrics` of an API process: request latency per route, the ranking path's answers (cache hit
ratio, fallbacks by cause), the model version serving each arm, feature freshness, and the worker's scheduled
jobs (last success, last duration) from `job_run`.

Each app has its own registry (tests run several apps in one process). Latency is observed by a pure ASGI
middleware (a histogram observation, no per-request allocation beyond it); everything read from elsewhere
(registry, feature store, database) is read when Prometheus scrapes, and a source that fails is reported
down (`fitrec_metrics_source_up`) instead of failing the scrape.
"""

import logging
import math
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from features.freshness import feature_freshness
from platform_api.job_runs import JobRun
from serving.ranking.metrics import RankingMetrics

log = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

router = APIRouter()


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "fitrec_http_request_duration_seconds",
            "Request latency by route template, method and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ranking = RankingMetrics(self.registry)
        self._children: dict[tuple[str, str, int], Any] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        child = self._children.get((method, route, status))
        if child is None:
            child = self._children[(method, route, status)] = self.latency.labels(method, route, str(status))
        child.observe(seconds)


class _Latency:
    """Times every HTTP request; labelled by the matched route's template (unmatched paths share one label)."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)


class _StateCollector(Collector):
    """What the app's state knows, read at scrape time."""

    def __init__(self, app: FastAPI, metrics: ServingMetrics) -> None:
        self._app = app
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        state = getattr(self._app.state, "serving", None)
        up = GaugeMetricFamily(
            "fitrec_metrics_source_up", "Whether each source of these metrics could be read", labels=["source"]
        )
        ratio = self._metrics.ranking.hit_ratio()
        hit = GaugeMetricFamily("fitrec_cache_hit_ratio", "Cached answers over model answers since the process started")
        hit.add_metric([], math.nan if ratio is None else ratio)
        yield hit
        if state is None:
            return
        for source, read in (("registry", self._models), ("features", self._freshness), ("database", self._jobs)):
            try:
                yield from read(state)
            except Exception:  # noqa: BLE001 - a failing source is reported down; the scrape goes on
                log.warning("metrics source %s unreadable", source, exc_info=True)
                up.add_metric([source], 0.0)
            else:
                up.add_metric([source], 1.0)
        yield up

    @staticmethod
    def _models(state: Any) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "fitrec_model_version",
            "Registry version of the model serving each arm (absent: none loaded)",
            labels=["arm", "alias"],
        )
        for arm, (holder, _share) in state.models.arms().items():
            if holder.current is not None:
                family.add_metric([arm, holder.alias], float(holder.current.version))
        yield family

    @staticmethod
    def _freshness(state: Any) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "fitrec_feature_age_seconds",
            "Age of the newest online value of each feature view (+Inf: never)",
            labels=["view"],
        )
        if state.store is not None:
            for view, age in feature_freshness(state.store).items():
                family.add_metric([view], age)
        yield family

    @staticmethod
    def _jobs(state: Any) -> Iterator[Metric]:
        last_ok = GaugeMetricFamily(
            "fitrec_job_last_success_timestamp_seconds",
            "When each scheduled job last finished ok (Unix time)",
            labels=["job"],
        )
        duration = GaugeMetricFamily(
            "fitrec_job_last_duration_seconds",
            "How long each scheduled job's last finished run took",
            labels=["job", "status"],
        )
        t = JobRun.__table__.c
        newest = sa.select(t.job, sa.func.max(t.started_at)).where(t.finished_at.is_not(None)).group_by(t.job)
        with state.platform.sessions() as session:
            for job, finished in session.execute(
                sa.select(t.job, sa.func.max(t.finished_at)).where(t.status == "ok").group_by(t.job)
            ):
                last_ok.add_metric([job], finished.timestamp())
            for job, status, started, finished in session.execute(
                sa.select(t.job, t.status, t.started_at, t.finished_at).where(
                    sa.tuple_(t.job, t.started_at).in_(newest)
                )
            ):
                duration.add_metric([job, status], (finished - started).total_seconds())
        yield last_ok
        yield duration


def install_metrics(app: FastAPI) -> ServingMetrics:
    """Time the app's requests and serve `/metrics`; the returned metrics go to the ranking path."""
    metrics = ServingMetrics()
    metrics.registry.register(_StateCollector(app, metrics))
    app.add_middleware(_Latency, metrics=metrics)
    app.state.metrics = metrics
    app.include_router(router)
    return metrics


@router.get("/metrics", include_in_schema=False)
def metrics_route(request: Request) -> Response:
    """Prometheus text format (a sync route: the scrape reads the database and the feature store)."""
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
