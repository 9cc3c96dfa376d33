"""Typed search attributes that let runs be filtered in the Temporal UI: set when Spool starts
a job (spool/service) and upserted by the workflows as the job's state changes.

``SpoolSummary`` is the run's one-line summary (spool/models/run_text.py), set at the start
only: the UI's workflow list cannot show a run's static summary (the server's list does not
carry it), but shows a search attribute as a column and filters on it
(``SpoolSummary STARTS_WITH "talk.mp4"``)."""

from temporalio.common import SearchAttributeKey

SPOOL_KIND = SearchAttributeKey.for_keyword("SpoolKind")
SPOOL_STATUS = SearchAttributeKey.for_keyword("SpoolStatus")
SPOOL_SUMMARY = SearchAttributeKey.for_keyword("SpoolSummary")

# The memo key under which a workflow keeps the view its ``status`` query answers, upserted at
# the end of every workflow task that changed it (workflows/blog.py): the service reads a
# job's status from describe without a worker (spool/service/jobs.py).
STATUS_MEMO = "status"
