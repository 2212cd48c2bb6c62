"""The ingest benchmark runs end to end on simulated events, which all pass validation."""

from pipelines.bench_ingest import bench


def test_bench_validates_every_simulated_event() -> None:
    figures = bench(3_000, chunk=1_500, days=14)
    assert figures["events"] == 3_000
    # The simulator speaks the event contract: nothing of it is quarantined or duplicated.
    assert (figures["stored"], figures["quarantined"], figures["duplicates"]) == (3_000, 0, 0)
    assert figures["events_per_s"] > 0 and figures["seconds"] >= figures["validate_seconds"]
    assert figures["small_batch_events"] == 200 and figures["small_batch_seconds"] > 0
