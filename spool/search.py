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

import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from spool.config import Settings

# Longer user queries are cut: they only cost time and, in Elasticsearch, can exceed the
# clause limit and fail the request.
MAX_QUERY_CHARS = 1000
MAX_QUERY_TOKENS = 64
REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass
class PostDocument:
    post_id: str
    version: int
    author_id: str
    title: str
    body: str
    tags: list[str] = field(default_factory=list)
    published_at: str | None = None


class IndexUnavailable(Exception):
    """The index cannot be reached or answered with a server error: retry later."""


class PostIndex(Protocol):
    def upsert(self, doc: PostDocument) -> bool: ...
    def get(self, post_id: str) -> PostDocument | None: ...
    def search(self, query: str, limit: int = 20) -> list[str]: ...
    def refresh(self) -> None: ...
    def ping(self) -> bool: ...
    def close(self) -> None: ...


def open_index(settings: Settings) -> PostIndex:
    if settings.elasticsearch_url:
        return ElasticsearchIndex(settings.elasticsearch_url, settings.elasticsearch_index)
    return SqliteIndex(settings.search_db_path)


def _check_version(doc: PostDocument) -> None:
    # Elasticsearch external versions are non-negative longs; SQLite follows the same rule.
    if not isinstance(doc.version, int) or doc.version < 0:
        raise ValueError(
            f"post {doc.post_id}: version must be a non-negative integer, got {doc.version!r}"
        )


def _clip_query(query: str) -> str:
    return (query or "")[:MAX_QUERY_CHARS]


# --------------------------------------------------------------------------- Elasticsearch

INDEX_SETTINGS = {"number_of_shards": 1, "number_of_replicas": 0}
# Only the standard analyzer: the integ-test distribution has no analysis-common module.
INDEX_MAPPINGS = {
    "dynamic": "strict",
    "properties": {
        "post_id": {"type": "keyword"},
        "version": {"type": "long"},
        "author_id": {"type": "keyword"},
        "title": {"type": "text", "analyzer": "standard"},
        "body": {"type": "text", "analyzer": "standard"},
        # keyword for exact filters; tags.text so a search for "learning" finds "machine-learning"
        "tags": {"type": "keyword", "fields": {"text": {"type": "text", "analyzer": "standard"}}},
        "published_at": {"type": "date"},
    },
}
SEARCH_FIELDS = ["title^2", "body", "tags.text"]


class ElasticsearchIndex:
    def __init__(
        self, url: str, index: str, *, request_timeout: float = REQUEST_TIMEOUT_SECONDS
    ) -> None:
        from elasticsearch import Elasticsearch

        self.url = url
        self.index = index
        # Temporal owns retries: the client makes exactly one attempt per call.
        self._es = Elasticsearch(
            url, max_retries=0, retry_on_timeout=False, request_timeout=request_timeout
        )
        self._index_ready = False
        self._lock = threading.Lock()

    @contextmanager
    def _unavailable_on_failure(self, action: str) -> Iterator[None]:
        from elastic_transport import TransportError
        from elasticsearch import ApiError

        try:
            yield
        except ApiError as exc:
            # 5xx and 429 (overloaded) pass with time; other 4xx are the caller's mistake.
            if exc.meta.status >= 500 or exc.meta.status == 429:
                raise IndexUnavailable(
                    f"Elasticsearch at {self.url} answered {exc.meta.status} to {action} "
                    f"on index {self.index!r}: {exc.message}"
                ) from exc
            raise
        except TransportError as exc:
            # Connection refused/reset, timeout, or a non-JSON answer (e.g. a proxy's 503 page).
            raise IndexUnavailable(
                f"Elasticsearch at {self.url} unavailable for {action} on index "
                f"{self.index!r}: {type(exc).__name__}: {exc}"
            ) from exc

    def _ensure_index(self) -> None:
        if self._index_ready:
            return
        from elasticsearch import BadRequestError

        with self._lock, self._unavailable_on_failure("create index"):
            if self._index_ready:
                return
            try:
                self._es.indices.create(
                    index=self.index, settings=INDEX_SETTINGS, mappings=INDEX_MAPPINGS
                )
            except BadRequestError as exc:
                # Another worker created it first: fine, it has the same mapping.
                if exc.message != "resource_already_exists_exception":
                    raise
            self._index_ready = True

    def upsert(self, doc: PostDocument) -> bool:
        from elasticsearch import ConflictError

        _check_version(doc)
        self._ensure_index()
        source = {
            "post_id": doc.post_id,
            "version": doc.version,
            "author_id": doc.author_id,
            "title": doc.title,
            "body": doc.body,
            "tags": list(doc.tags),
            "published_at": doc.published_at,
        }
        with self._unavailable_on_failure(f"index post {doc.post_id}"):
            try:
                self._es.index(
                    index=self.index,
                    id=doc.post_id,
                    document=source,
                    version=doc.version,
                    version_type="external",
                )
            except ConflictError:
                return False  # this version or a newer one is already indexed
        return True

    def get(self, post_id: str) -> PostDocument | None:
        from elasticsearch import NotFoundError

        self._ensure_index()
        with self._unavailable_on_failure(f"get post {post_id}"):
            try:
                found = self._es.get(index=self.index, id=post_id)
            except NotFoundError:
                return None
        src: dict[str, Any] = found["_source"]
        return PostDocument(
            post_id=post_id,
            version=int(found["_version"]),
            author_id=src["author_id"],
            title=src["title"],
            body=src["body"],
            tags=list(src.get("tags") or []),
            published_at=src.get("published_at"),
        )

    def search(self, query: str, limit: int = 20) -> list[str]:
        from elasticsearch import BadRequestError

        query = _clip_query(query)
        if not query.strip() or limit <= 0:
            return []
        self._ensure_index()
        # multi_match analyzes the text as plain words: no query syntax for users to break.
        body = {"multi_match": {"query": query, "fields": SEARCH_FIELDS}}
        with self._unavailable_on_failure("search"):
            try:
                found = self._es.search(
                    index=self.index,
                    query=body,
                    size=limit,
                    source=False,
                    sort=["_score", {"post_id": "asc"}],
                    track_total_hits=False,
                )
            except BadRequestError:
                return []  # e.g. too many clauses from a pathological query
        return [hit["_id"] for hit in found["hits"]["hits"]]

    def refresh(self) -> None:
        self._ensure_index()
        with self._unavailable_on_failure("refresh"):
            self._es.indices.refresh(index=self.index)

    def ping(self) -> bool:
        # Not HEAD / (the client's ping): that route lives in the rest-root module, which
        # minimal distributions such as the integ-test zip do not ship.
        try:
            health = self._es.cluster.health()
            return health["status"] in ("green", "yellow")
        except Exception:  # noqa: BLE001 - ping answers a yes/no question
            return False

    def close(self) -> None:
        self._es.close()


# --------------------------------------------------------------------------- SQLite FTS5

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS posts (
    post_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    author_id TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    tags TEXT NOT NULL,
    published_at TEXT
);
CREATE VIRTUAL TABLE IF NOT EXISTS posts_fts USING fts5(title, body, tags);
"""
# bm25 column weights in posts_fts column order: title counts double, as in Elasticsearch.
BM25_WEIGHTS = (2.0, 1.0, 1.0)
_WORD = re.compile(r"\w+")


def fts5_expression(query: str) -> str | None:
    """A safe FTS5 MATCH expression for user text: its words, each quoted, joined by OR.

    None when the text has no words (punctuation only, empty)."""
    tokens = _WORD.findall(_clip_query(query))[:MAX_QUERY_TOKENS]
    if not tokens:
        return None
    # \w+ never contains a double quote, so quoting cannot be escaped from.
    return " OR ".join(f'"{token}"' for token in tokens)


class SqliteIndex:
    """The embedded index: one SQLite file, its connections kept open between calls.

    Each call borrows a connection for its own use (so the index is safe across threads) and
    gives it back. Opening a connection per call cost most of index_post's time: every open
    re-reads the schema, and in WAL mode the last connection to close checkpoints the log and
    deletes it, which a steady stream of one-at-a-time calls did on every write.
    """

    # Connections kept between calls; more are opened under bursts and closed when returned.
    MAX_IDLE_CONNECTIONS = 32

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._idle: list[sqlite3.Connection] = []
        self._idle_lock = threading.Lock()
        self._closed = False
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SQLITE_SCHEMA)

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=REQUEST_TIMEOUT_SECONDS,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.OperationalError as exc:
            raise IndexUnavailable(f"cannot open search index {self.path}: {exc}") from exc
        try:
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.OperationalError as exc:
            conn.close()
            raise IndexUnavailable(f"search index {self.path}: {exc}") from exc
        return conn

    def _borrow(self) -> sqlite3.Connection:
        with self._idle_lock:
            if self._idle:
                return self._idle.pop()
        return self._open()

    def _give_back(self, conn: sqlite3.Connection, reusable: bool) -> None:
        """Keep a connection that ended its call cleanly; close any other (an error may have
        left it in a state the next caller must not inherit)."""
        if reusable and not conn.in_transaction:
            with self._idle_lock:
                if not self._closed and len(self._idle) < self.MAX_IDLE_CONNECTIONS:
                    self._idle.append(conn)
                    return
        conn.close()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = self._borrow()
        reusable = False
        try:
            yield conn
            reusable = True
        except sqlite3.OperationalError as exc:
            # Locked or busy past the timeout, disk full, I/O error: worth a retry later.
            raise IndexUnavailable(f"search index {self.path}: {exc}") from exc
        finally:
            self._give_back(conn, reusable)

    def upsert(self, doc: PostDocument) -> bool:
        _check_version(doc)
        with self._connect() as conn:
            # IMMEDIATE: take the write lock before reading the stored version.
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    """INSERT INTO posts (post_id, version, author_id, title, body, tags,
                                          published_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (post_id) DO UPDATE SET
                           version = excluded.version, author_id = excluded.author_id,
                           title = excluded.title, body = excluded.body,
                           tags = excluded.tags, published_at = excluded.published_at
                       WHERE excluded.version > posts.version
                       RETURNING rowid""",
                    (
                        doc.post_id,
                        doc.version,
                        doc.author_id,
                        doc.title,
                        doc.body,
                        json.dumps(list(doc.tags)),
                        doc.published_at,
                    ),
                ).fetchone()
                if row is None:
                    conn.execute("ROLLBACK")
                    return False  # this version or a newer one is already indexed
                conn.execute("DELETE FROM posts_fts WHERE rowid = ?", (row[0],))
                conn.execute(
                    "INSERT INTO posts_fts (rowid, title, body, tags) VALUES (?, ?, ?, ?)",
                    (row[0], doc.title, doc.body, " ".join(doc.tags)),
                )
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return True

    def get(self, post_id: str) -> PostDocument | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT post_id, version, author_id, title, body, tags, published_at "
                "FROM posts WHERE post_id = ?",
                (post_id,),
            ).fetchone()
        if row is None:
            return None
        return PostDocument(
            post_id=row[0],
            version=row[1],
            author_id=row[2],
            title=row[3],
            body=row[4],
            tags=json.loads(row[5]),
            published_at=row[6],
        )

    def search(self, query: str, limit: int = 20) -> list[str]:
        expression = fts5_expression(query)
        if expression is None or limit <= 0:
            return []
        with self._connect() as conn:
            try:
                rows = conn.execute(
                    f"""SELECT p.post_id FROM posts_fts JOIN posts p ON p.rowid = posts_fts.rowid
                        WHERE posts_fts MATCH ?
                        ORDER BY bm25(posts_fts, {", ".join(map(str, BM25_WEIGHTS))}), p.post_id
                        LIMIT ?""",
                    (expression, limit),
                ).fetchall()
            except sqlite3.OperationalError as exc:
                if "fts5" in str(exc).lower():
                    return []  # an expression FTS5 still rejects: no results, not an error
                raise
        return [row[0] for row in rows]

    def refresh(self) -> None:
        """Writes are visible on commit."""

    def ping(self) -> bool:
        try:
            with self._connect() as conn:
                conn.execute("SELECT 1 FROM posts LIMIT 1")
            return True
        except (IndexUnavailable, sqlite3.Error):
            return False

    def close(self) -> None:
        """Close the kept connections; one still lent out is closed when it comes back."""
        with self._idle_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
