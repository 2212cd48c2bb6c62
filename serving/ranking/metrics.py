"""Counters of the ranking path's answers, for `/metrics`: where each answer came from, and why popularity
answered when it did. The cache hit ratio is cache / (cache + ranked) answers."""

from prometheus_client import CollectorRegistry, Counter, values

# Importing Feast's metrics module first sets PROMETHEUS_MULTIPROC_DIR, which puts prometheus_client in its
# multiprocess mode: every metric's values then live in files keyed by name and labels, shared by every app
# (and every registry) of the process. fitrec's metrics belong to one app's registry, in memory.
values.ValueClass = values.MutexValue

CACHE, RANKED, FALLBACK = "cache", "ranked", "fallback"


class RankingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.answers = Counter(
            "fitrec_recommendations",
            "Recommendation answers by arm and source: cache (a cached slate), ranked (ranked on request), "
            "fallback (popularity)",
            ["arm", "source"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "fitrec_recommendation_fallbacks",
            "Answers given by popularity instead of the model, by cause",
            ["reason"],
            registry=registry,
        )
        # Children resolved once: labels() takes a lock and a dict lookup the hot path need not pay.
        self._children: dict[tuple[str, str], Counter] = {}

    def answered(self, *, arm: str, cached: bool, fallback_reason: str | None) -> None:
        source = FALLBACK if fallback_reason else CACHE if cached else RANKED
        child = self._children.get((arm, source))
        if child is None:
            child = self._children[(arm, source)] = self.answers.labels(arm=arm, source=source)
        child.inc()
        if fallback_reason:
            self.fallbacks.labels(reason=fallback_reason).inc()

    def hit_ratio(self) -> float | None:
        """Cached answers over model answers (cached or ranked) since start; None before any."""
        counts = {source: 0.0 for source in (CACHE, RANKED)}
        for (_, source), child in self._children.items():
            if source in counts:
                counts[source] += child._value.get()  # noqa: SLF001 - prometheus_client has no public read
        total = counts[CACHE] + counts[RANKED]
        return counts[CACHE] / total if total else None
