"""Validation of incoming events with Great Expectations: suites per event type, quarantine, reports."""

from pipelines.validation.frames import events_frame
from pipelines.validation.runner import (
    ConservationError,
    SuiteError,
    ValidationConfig,
    ValidationOutcome,
    validate_events,
)

__all__ = [
    "ConservationError",
    "SuiteError",
    "ValidationConfig",
    "ValidationOutcome",
    "events_frame",
    "validate_events",
]
