"""Turning a failure chain into the sentence a person needs. Workflow-safe (no I/O)."""

from temporalio.exceptions import ActivityError, ChildWorkflowError


def failure_message(err: BaseException) -> str:
    """The innermost cause's message, not the wrappers' ("activity task failed", ...)."""
    while isinstance(err, ActivityError | ChildWorkflowError) and err.cause is not None:
        err = err.cause
    return str(err) or type(err).__name__
