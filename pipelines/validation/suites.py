"""Great Expectations suites: one for the envelope, one per event type, built once per process.

GE takes seconds to import and set up, so the context, the pandas data source and
the suites are created on first use and reused; what changes per batch (now) is
passed as suite parameters (`{"$PARAMETER": ...}`).

Foreign ids are checked on `<id>__unknown`, the ids the transform could not find
among the known ones (a hash join in polars): GE's in-set expectation copies its
value set into every metric configuration, which takes seconds per suite for
100k users, where the join takes milliseconds.
Every expectation carries a stable name in `meta["name"]` (`<column>.<check>`): the
name quarantined rows are tagged with.
"""

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from pipelines.validation.contract import (
    EVENT_TYPES,
    ITEM_REQUIRED_TYPES,
    USERLESS_TYPES,
    envelope_max_length,
    specs_of,
)
from pipelines.validation.frames import UNKNOWN, UNPARSED

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.expectations import Expectation

ENVELOPE_SUITE = "envelope"
LATEST, OLDEST = "latest", "oldest"
# Calendar days (health metrics) are local dates: "today" somewhere may be tomorrow in UTC.
LATEST_DAY = "latest_day"
# Types whose valid rows introduce ids that later rows of the same batch may refer to.
INTRODUCES = {"user.created": "user_id", "content.ready": "item_id"}
UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
RESULT_FORMAT = {"result_format": "COMPLETE", "return_unexpected_index_query": False}


def _param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def _envelope() -> Iterator["Expectation"]:
    import great_expectations.expectations as gxe

    yield gxe.ExpectColumnValuesToNotBeNull(column="event_id", meta={"name": "event_id.required"})
    yield gxe.ExpectColumnValuesToMatchRegex(column="event_id", regex=UUID_RE, meta={"name": "event_id.type"})
    yield gxe.ExpectColumnValuesToNotBeNull(column="event_type", meta={"name": "event_type.required"})
    yield gxe.ExpectColumnValuesToBeInSet(
        column="event_type", value_set=list(EVENT_TYPES), meta={"name": "event_type.enum"}
    )
    yield from _timestamp_checks("occurred_at", required=True, latest=LATEST)
    yield gxe.ExpectColumnValuesToBeNull(column=f"properties{UNPARSED}", meta={"name": "properties.type"})


def _timestamp_checks(column: str, *, required: bool, latest: str) -> Iterator["Expectation"]:
    import great_expectations.expectations as gxe

    if required:
        yield gxe.ExpectColumnValuesToNotBeNull(column=column, meta={"name": f"{column}.required"})
    yield gxe.ExpectColumnValuesToBeNull(column=f"{column}{UNPARSED}", meta={"name": f"{column}.type"})
    yield gxe.ExpectColumnValuesToBeBetween(column=column, max_value=_param(latest), meta={"name": f"{column}.future"})
    yield gxe.ExpectColumnValuesToBeBetween(column=column, min_value=_param(OLDEST), meta={"name": f"{column}.too_old"})


def _event_type(event_type: str) -> Iterator["Expectation"]:
    import great_expectations.expectations as gxe

    for column in ("user_id", "item_id"):
        required = event_type in ITEM_REQUIRED_TYPES if column == "item_id" else event_type not in USERLESS_TYPES
        if required:
            yield gxe.ExpectColumnValuesToNotBeNull(column=column, meta={"name": f"{column}.required"})
        yield gxe.ExpectColumnValueLengthsToBeBetween(
            column=column, min_value=1, max_value=envelope_max_length(column), meta={"name": f"{column}.length"}
        )
        if INTRODUCES.get(event_type) != column:
            yield gxe.ExpectColumnValuesToBeNull(column=f"{column}{UNKNOWN}", meta={"name": f"{column}.known"})
    for spec in specs_of(event_type):
        name = spec.name
        if spec.kind == "date":
            yield from _timestamp_checks(name, required=spec.required, latest=LATEST_DAY)
            continue
        if spec.required:
            yield gxe.ExpectColumnValuesToNotBeNull(column=name, meta={"name": f"{name}.required"})
        if spec.kind != "str":
            yield gxe.ExpectColumnValuesToBeNull(column=f"{name}{UNPARSED}", meta={"name": f"{name}.type"})
        if spec.has_range:
            yield gxe.ExpectColumnValuesToBeBetween(
                column=name,
                min_value=spec.ge if spec.ge is not None else spec.gt,
                max_value=spec.le if spec.le is not None else spec.lt,
                strict_min=spec.gt is not None,
                strict_max=spec.lt is not None,
                meta={"name": f"{name}.range"},
            )
        if spec.enum:
            yield gxe.ExpectColumnValuesToBeInSet(column=name, value_set=list(spec.enum), meta={"name": f"{name}.enum"})
        if spec.kind == "str" and (spec.min_length is not None or spec.max_length is not None):
            yield gxe.ExpectColumnValueLengthsToBeBetween(
                column=name, min_value=spec.min_length, max_value=spec.max_length, meta={"name": f"{name}.length"}
            )


def suite_columns(event_type: str) -> list[str]:
    """The columns a type's suite reads (list properties are checked through their unparsed text)."""
    if event_type == ENVELOPE_SUITE:
        return ["event_id", "event_type", "occurred_at", f"occurred_at{UNPARSED}", f"properties{UNPARSED}"]
    columns = ["user_id", "item_id", f"user_id{UNKNOWN}", f"item_id{UNKNOWN}"]
    for spec in specs_of(event_type):
        if spec.kind != "list":
            columns.append(spec.name)
        if spec.kind != "str":
            columns.append(f"{spec.name}{UNPARSED}")
    return columns


@dataclass
class Validator:
    """The process-wide GE context with a batch definition and a suite per event type."""

    context: Any
    batches: dict[str, Any]
    suites: dict[str, Any]
    lock: threading.Lock

    def run(self, name: str, frame: "pd.DataFrame", parameters: dict[str, Any]) -> "ExpectationSuiteValidationResult":
        batch = self.batches[name].get_batch(batch_parameters={"dataframe": frame})
        with self.lock:  # a GE context is not safe to share between threads
            return batch.validate(self.suites[name], expectation_parameters=parameters, result_format=RESULT_FORMAT)


@cache
def validator() -> Validator:
    """Build the GE context and every suite once per process."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    source = context.data_sources.add_pandas("events")
    batches: dict[str, Any] = {}
    suites: dict[str, Any] = {}
    for name in (ENVELOPE_SUITE, *EVENT_TYPES):
        batches[name] = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe("batch")
        suite = gx.ExpectationSuite(name=name)
        for expectation in _envelope() if name == ENVELOPE_SUITE else _event_type(name):
            suite.add_expectation(expectation)
        suites[name] = context.suites.add(suite)
    return Validator(context=context, batches=batches, suites=suites, lock=threading.Lock())
