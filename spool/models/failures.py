"""Turning a failure chain into the sentence a person needs, in one place: the workflows use it
for a step's error and the status for a failed job's. No I/O: workflow code imports it."""

from temporalio.exceptions import ActivityError, ChildWorkflowError

__all__ = ["failure_message"]


def failure_message(err: BaseException) -> str:
    """The innermost cause's message, not the wrappers' ("activity task failed", ...)."""
    while isinstance(err, ActivityError | ChildWorkflowError) and err.cause is not None:
        err = err.cause
    return str(err) or type(err).__name__
