"""Typed search attributes that let runs be filtered in the Temporal UI: set when Spool starts
a job (spool/service) and upserted by the workflows as the job's state changes."""

from temporalio.common import SearchAttributeKey

SPOOL_KIND = SearchAttributeKey.for_keyword("SpoolKind")
SPOOL_STATUS = SearchAttributeKey.for_keyword("SpoolStatus")
