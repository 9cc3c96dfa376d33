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
    check_fence,
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
    published_at TEXT,
    fence INTEGER NOT NULL DEFAULT 0,
    retracted INTEGER NOT NULL DEFAULT 0
);
CREATE VIRTUAL TABLE IF NOT EXISTS posts_fts USING fts5(title, body, tags);
"""
# Files made before fences and tombstones: the columns added, each post at its version's fence.
SQLITE_UPGRADES = (
    "ALTER TABLE posts ADD COLUMN fence INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE posts ADD COLUMN retracted INTEGER NOT NULL DEFAULT 0",
    "UPDATE posts SET fence = version WHERE fence = 0",
)
# bm25 column weights in posts_fts column order: title counts double, as in Elasticsearch.
BM25_WEIGHTS = (2.0, 1.0, 1.0)
_WORD = re.compile(r"\w+")
_WRITE = """INSERT INTO posts (post_id, version, author_id, title, body, tags, published_at, fence,
                              retracted)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (post_id) DO UPDATE SET
                version = excluded.version, author_id = excluded.author_id,
                title = excluded.title, body = excluded.body, tags = excluded.tags,
                published_at = excluded.published_at, fence = excluded.fence,
                retracted = excluded.retracted
            WHERE excluded.fence > posts.fence
            RETURNING rowid"""


def fts5_expression(query: str) -> str | None:
    """A safe FTS5 MATCH expression for user text: its words, each quoted, joined by OR.

    None when the text has no words (punctuation only, empty)."""
    tokens = _WORD.findall(clip_query(query))[:MAX_QUERY_TOKENS]
    if not tokens:
        return None
    # \w+ never contains a double quote, so quoting cannot be escaped from.
    return " OR ".join(f'"{token}"' for token in tokens)


def _upgrade(conn: sqlite3.Connection) -> None:
    columns = {row[1] for row in conn.execute("PRAGMA table_info(posts)")}
    if "fence" in columns:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(posts)")}
        if "fence" not in columns:  # not another process first
            for statement in SQLITE_UPGRADES:
                conn.execute(statement)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


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
            _upgrade(conn)

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
        fields = (
            doc.post_id,
            doc.version,
            doc.author_id,
            doc.title,
            doc.body,
            json.dumps(list(doc.tags)),
            doc.published_at,
            doc.order,
        )
        return self._write(fields, retracted=False)

    def retract(self, post_id: str, fence: int) -> bool:
        """Leave a tombstone at ``fence``: the post is found no more, and no write at an
        older fence brings it back."""
        check_fence(post_id, fence)
        return self._write((post_id, 0, "", "", "", "[]", None, fence), retracted=True)

    def _write(self, fields: tuple, *, retracted: bool) -> bool:
        with self._connect() as conn:
            # IMMEDIATE: take the write lock before reading the stored fence.
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(_WRITE, (*fields, int(retracted))).fetchone()
                if row is None:
                    conn.execute("ROLLBACK")
                    return False  # this fence or a newer one is already written
                conn.execute("DELETE FROM posts_fts WHERE rowid = ?", (row[0],))
                if not retracted:
                    conn.execute(
                        "INSERT INTO posts_fts (rowid, title, body, tags) VALUES (?, ?, ?, ?)",
                        (row[0], fields[3], fields[4], " ".join(json.loads(fields[5]))),
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
                "SELECT post_id, version, author_id, title, body, tags, published_at, fence "
                "FROM posts WHERE post_id = ? AND NOT retracted",
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
            fence=row[7],
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
