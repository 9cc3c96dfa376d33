"""Logging for every process: plain text (the default) or one JSON object per line.

SPOOL_LOG_FORMAT=json gives lines like::

    {"time": "2026-11-27T08:30:00.123Z", "level": "INFO", "logger": "spool.notify",
     "message": "notify ...", "job_id": "post-p1-v1", "step": "notify_followers", ...}

``job_id`` (the workflow id: job ids are workflow ids) and ``step`` (the activity id: steps
are activity ids) are on every line written while an activity runs, whichever logger wrote
it, and ``job_id`` on every line from ``workflow.logger``; Temporal's loggers put that
information on the record and the filter below lifts it into fields.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

from temporalio import activity, workflow

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Temporal's activity and workflow details, as the SDK's loggers name them, and our fields.
ACTIVITY_FIELDS = {
    "workflow_id": "job_id",
    "activity_id": "step",
    "activity_type": "activity_type",
    "attempt": "attempt",
    "task_queue": "task_queue",
    "workflow_type": "workflow_type",
    "workflow_run_id": "run_id",
}
WORKFLOW_FIELDS = {
    "workflow_id": "job_id",
    "workflow_type": "workflow_type",
    "run_id": "run_id",
    "task_queue": "task_queue",
    "attempt": "attempt",
}
# What every LogRecord has; anything else was passed as ``extra`` and is kept.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class TemporalContextFilter(logging.Filter):
    """Lifts the job id and step of the running workflow or activity into record.spool."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.spool = temporal_fields(record)
        return True


def temporal_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The workflow/activity fields a record carries, or those of the running activity."""
    details = getattr(record, "temporal_activity", None)
    if isinstance(details, dict):
        return _renamed(details, ACTIVITY_FIELDS)
    details = getattr(record, "temporal_workflow", None)
    if isinstance(details, dict):
        return _renamed(details, WORKFLOW_FIELDS)
    # A plain logger (spool.notify, an adapter) called from inside an activity: the SDK keeps
    # the activity's context in a context variable, copied into its executor thread.
    if activity.in_activity():
        info = activity.info()
        return _renamed({name: getattr(info, name) for name in ACTIVITY_FIELDS}, ACTIVITY_FIELDS)
    return {}


def _renamed(details: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {ours: details[theirs] for theirs, ours in names.items() if theirs in details}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the Temporal
    fields, any ``extra`` given to the call, and the exception text if there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "spool", None)
        line.update(fields if fields is not None else temporal_fields(record))
        line.update(_extras(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    skip = _RECORD_ATTRIBUTES | {"spool", "temporal_activity", "temporal_workflow"}
    return {key: value for key, value in vars(record).items() if key not in skip}


def log_format(value: str) -> str:
    """A log format checked: a wrong value is an error that names the right ones."""
    chosen = value.strip().lower() or "text"
    if chosen not in FORMATS:
        raise ValueError(f"SPOOL_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {value!r}")
    return chosen


def configure_logging(fmt: str = "text", default_level: str | int = "INFO") -> None:
    """Set up the root logger for a process (replacing earlier handlers): text or json, at
    SPOOL_LOG_LEVEL or else ``default_level``.

    In json mode Temporal's loggers stop appending their details to the message text, since
    the same details are fields of the line.
    """
    handler = logging.StreamHandler()
    if log_format(fmt) == "json":
        handler.setFormatter(JsonFormatter())
        activity.logger.activity_info_on_message = False
        workflow.logger.workflow_info_on_message = False
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    # A filter on the handler (not a logger) sees records from every logger that propagates.
    handler.addFilter(TemporalContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(os.environ.get("SPOOL_LOG_LEVEL") or default_level)
