"""The embedded post index: one SQLite file, its text in an FTS5 table ranked by bm25."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spool.search.base import (
    MAX_QUERY_TOKENS,
    REQUEST_TIMEOUT_SECONDS,
    IndexUnavailable,
    PostDocument,
    check_version,
    clip_query,
)

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
    tokens = _WORD.findall(clip_query(query))[:MAX_QUERY_TOKENS]
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
        check_version(doc)
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
