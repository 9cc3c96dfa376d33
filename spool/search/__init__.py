"""The post index: Elasticsearch when configured, else an embedded SQLite FTS5 file.

Both backends behave the same for callers:
- upsert is idempotent and ordered by post version: a write at the same or an older version
  than the stored one is refused with False (not an error), so retries and reordered
  deliveries never resurrect an old title;
- anything that means "the index is not reachable right now" raises IndexUnavailable, and
  the caller (a Temporal activity) retries; the clients here never retry on their own;
- search takes arbitrary user text, never raises on it, and returns post ids best first,
  matching any word (OR) with a title match worth twice a body match.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from spool.search.base import IndexUnavailable, PostDocument, PostIndex
from spool.search.elastic import ElasticsearchIndex
from spool.search.sqlite import SqliteIndex

if TYPE_CHECKING:
    from spool.config import Settings

__all__ = ["IndexUnavailable", "PostDocument", "PostIndex", "open_index"]


def open_index(settings: Settings) -> PostIndex:
    if settings.elasticsearch_url:
        return ElasticsearchIndex(settings.elasticsearch_url, settings.elasticsearch_index)
    return SqliteIndex(settings.search_db_path)
