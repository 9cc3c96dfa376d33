"""Turning a failure chain into the sentence a person needs: defined once, in
spool/models/failures.py (the status uses it too). Workflow-safe (no I/O)."""

from spool.models.failures import failure_message

__all__ = ["failure_message"]
