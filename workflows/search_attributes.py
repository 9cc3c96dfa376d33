"""Typed search attributes Spool upserts so runs can be filtered in the Temporal UI."""

from temporalio.common import SearchAttributeKey

SPOOL_KIND = SearchAttributeKey.for_keyword("SpoolKind")
SPOOL_STATUS = SearchAttributeKey.for_keyword("SpoolStatus")
