"""A job's status as a plain dict, for scripts and tests that print or index it.

The status is built in one place, :func:`spool.service.jobs.status` (a typed ``JobView``);
this is its JSON form, the pipeline's own fields included, as ``starter.py status --json``
prints it.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from spool.service import jobs
from spool.service.jobs import JobNotFound

__all__ = ["JobNotFound", "job_status"]


async def job_status(client: Client, job_id: str) -> dict[str, Any]:
    """The job's state and steps as a JSON-ready dict; raises JobNotFound for unknown ids."""
    return (await jobs.status(client, job_id)).to_dict()
