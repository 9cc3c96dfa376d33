"""The post index: the same behaviour from the embedded SQLite backend and real Elasticsearch."""

from __future__ import annotations

import http.server
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from devstack.proc import free_port
from spool.config import Settings
from spool.search import IndexUnavailable, PostDocument, open_index
from spool.search.elastic import ElasticsearchIndex
from spool.search.sqlite import SqliteIndex, fts5_expression

pytestmark = pytest.mark.unit


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("elasticsearch", marks=[pytest.mark.elasticsearch, pytest.mark.e2e]),
    ]
)
def index(request, tmp_path):
    if request.param == "sqlite":
        idx = SqliteIndex(tmp_path / "search" / "search.db")
    else:
        es_url = request.getfixturevalue("es_url")
        idx = ElasticsearchIndex(es_url, f"test-posts-{uuid.uuid4().hex[:12]}")
    yield idx
    idx.close()


def post(
    post_id: str = "p1",
    version: int = 1,
    title: str = "Hello world",
    body: str = "A first post.",
    tags: list[str] | None = None,
) -> PostDocument:
    return PostDocument(
        post_id=post_id,
        version=version,
        author_id="alice",
        title=title,
        body=body,
        tags=["intro"] if tags is None else tags,
        published_at="2024-05-01T12:00:00Z",
    )


def test_upsert_then_get_and_search(index):
    doc = post(tags=["intro", "machine-learning"])
    assert index.upsert(doc) is True
    index.refresh()
    assert index.get("p1") == doc
    assert index.search("hello") == ["p1"]
    assert index.search("learning") == ["p1"]  # words inside tags are searchable
    assert index.search("nothing-matches-this") == []
    assert index.get("missing") is None


def test_same_version_again_is_refused_and_changes_nothing(index):
    assert index.upsert(post(title="Original title")) is True
    assert index.upsert(post(title="Replayed title")) is False
    index.refresh()
    assert index.get("p1").title == "Original title"
    assert index.search("replayed") == []


def test_newer_version_replaces_the_document(index):
    index.upsert(post(version=1, title="Draft zebra"))
    assert index.upsert(post(version=2, title="Final giraffe")) is True
    index.refresh()
    stored = index.get("p1")
    assert (stored.version, stored.title) == (2, "Final giraffe")
    assert index.search("giraffe") == ["p1"]
    assert index.search("zebra") == []


def test_older_version_after_newer_is_refused(index):
    index.upsert(post(version=5, title="Newest heron"))
    assert index.upsert(post(version=3, title="Stale otter")) is False
    index.refresh()
    stored = index.get("p1")
    assert (stored.version, stored.title) == (5, "Newest heron")
    assert index.search("otter") == []
    assert index.search("heron") == ["p1"]


def test_title_match_ranks_above_a_single_body_match(index):
    filler = "Some unrelated words about cooking and gardening. " * 3
    index.upsert(post("body-only", title="Weekend notes", body=filler + "kayak " + filler))
    index.upsert(post("in-title", title="Kayak trip", body=filler))
    index.refresh()
    assert index.search("kayak") == ["in-title", "body-only"]


def test_more_matching_words_rank_higher_and_limit_applies(index):
    for i in range(5):
        index.upsert(post(f"p{i}", title=f"Post {i}", body="common word"))
    index.upsert(post("both", title="Common rare", body="common word"))
    index.refresh()
    found = index.search("rare common", limit=3)
    assert found[0] == "both"
    assert len(found) == 3


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '""',
        "AND OR",
        "OR",
        "NOT",
        "*",
        "title:(",
        "body:",
        "(",
        ")",
        "a AND (b OR",
        "NEAR(a b)",
        "^title",
        "-",
        "+",
        "{}",
        "[]",
        "\\",
        "'",
        "\x00",
        "café ñandú 日本語 🎉",
        "",
        "   ",
        "?*~",
        "a" * 5000,
        " ".join(["word"] * 3000),
    ],
)
def test_arbitrary_user_queries_never_raise(index, query):
    index.upsert(post("cafe", title="Café ñandú", body="日本語 text"))
    index.upsert(post("quokka", title="Quokka", body="Marsupials smile.", tags=["zoo"]))
    index.refresh()
    alone = index.search(query)
    # Exactly the posts that share a word with it: none, or the café post for its own words.
    assert alone == (["cafe"] if "café" in query else []), alone
    # A real word still finds its post with the hostile syntax on both sides of it.
    around = f"{query[:200]} quokka {query[:200]}"
    assert "quokka" in index.search(around), around[:80]


def test_punctuation_only_queries_return_nothing(index):
    index.upsert(post())
    index.refresh()
    for query in ['"', "*", "()", "", "  ", "-+:^"]:
        assert index.search(query) == []


def test_unicode_words_are_found(index):
    index.upsert(post(title="Café society", body="日本語"))
    index.refresh()
    assert index.search("café") == ["p1"]


def test_concurrent_upserts_keep_the_newest_version(index):
    versions = list(range(1, 21))
    with ThreadPoolExecutor(8) as pool:
        applied = list(
            pool.map(lambda v: index.upsert(post(version=v, title=f"v{v}")), versions[::-1])
        )
    # Whatever order the threads ran in, the newest version is never refused and wins.
    assert applied[0] is True and applied.count(True) >= 1
    assert (index.get("p1").version, index.get("p1").title) == (20, "v20")
    # Once it is stored, every older version and a replay of it are refused, even at once.
    with ThreadPoolExecutor(8) as pool:
        again = list(
            pool.map(lambda v: index.upsert(post(version=v, title=f"late v{v}")), versions)
        )
    assert again == [False] * len(versions)
    index.refresh()
    assert (index.get("p1").version, index.get("p1").title) == (20, "v20")
    assert index.search("v20") == ["p1"]
    assert [v for v in versions[:-1] if index.search(f"v{v}")] == []
    assert index.search("late") == []


def test_ping(index):
    assert index.ping() is True


def test_elasticsearch_at_a_closed_port_is_unavailable():
    idx = ElasticsearchIndex(f"http://127.0.0.1:{free_port()}", "posts")
    assert idx.ping() is False
    for call in (
        lambda: idx.upsert(post()),
        lambda: idx.get("p1"),
        lambda: idx.search("hello"),
        idx.refresh,
    ):
        with pytest.raises(IndexUnavailable, match="unavailable"):
            call()
    idx.close()


class _ProxyDown(http.server.BaseHTTPRequestHandler):
    """A reverse proxy whose backend is down: 503 with an HTML page, no product header."""

    def _answer(self):
        body = b"<html><body>503 Service Temporarily Unavailable</body></html>"
        self.send_response(503)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = _answer

    def log_message(self, *args):
        pass


def test_elasticsearch_behind_a_proxy_answering_503_is_unavailable():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ProxyDown)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        idx = ElasticsearchIndex(f"http://127.0.0.1:{server.server_port}", "posts")
        with pytest.raises(IndexUnavailable):
            idx.upsert(post())
        with pytest.raises(IndexUnavailable):
            idx.search("hello")
        idx.close()
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.e2e
@pytest.mark.elasticsearch
def test_two_clients_creating_the_index_at_once(es_url):
    name = f"test-race-{uuid.uuid4().hex[:12]}"
    clients = [ElasticsearchIndex(es_url, name) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: c.upsert(post(version=1)), clients))
    assert results.count(True) == 1  # the rest are refused as the same version
    for client in clients:
        client.close()


def test_fts5_expression_quotes_every_word():
    assert fts5_expression('title:( "hello" AND world*') == '"title" OR "hello" OR "AND" OR "world"'
    assert fts5_expression("!!! ---") is None


def test_open_index_picks_the_backend(tmp_path):
    sqlite_idx = open_index(Settings(data_dir=tmp_path / "nested" / "data"))
    assert isinstance(sqlite_idx, SqliteIndex)
    assert (tmp_path / "nested" / "data" / "search.db").exists()
    es_idx = open_index(
        Settings(
            data_dir=tmp_path, elasticsearch_url="http://127.0.0.1:9", elasticsearch_index="custom"
        )
    )
    assert isinstance(es_idx, ElasticsearchIndex)
    assert es_idx.index == "custom"
    es_idx.close()


def test_sqlite_index_keeps_its_connections_between_calls(tmp_path, monkeypatch):
    """Opening a connection per call cost most of index_post's time (every open re-reads the
    schema; in WAL mode the last connection to close checkpoints and deletes the log), so
    calls borrow kept connections, one per concurrent caller."""
    import sqlite3

    from spool.search import sqlite as search

    opened = []
    real_connect = sqlite3.connect
    monkeypatch.setattr(
        search.sqlite3, "connect", lambda *a, **kw: opened.append(1) or real_connect(*a, **kw)
    )
    idx = SqliteIndex(tmp_path / "search.db")
    for n in range(50):
        assert idx.upsert(post(post_id=f"p{n}", title=f"post {n}")) is True
        assert idx.get(f"p{n}").title == f"post {n}"
    assert idx.search("post") and len(opened) == 1
    with ThreadPoolExecutor(4) as pool:  # concurrent callers each get their own
        assert all(pool.map(lambda n: idx.upsert(post(post_id=f"q{n}")), range(40)))
    assert len(opened) <= 1 + 4
    idx.close()
    assert idx.get("p1").title == "post 1"  # a closed index still answers, unpooled


def test_sqlite_index_locked_past_its_timeout_is_unavailable_then_recovers(tmp_path, monkeypatch):
    """Another writer holding the file longer than the timeout is an outage (the activity
    retries), and the connection that hit it does not spoil the next call."""
    import sqlite3

    from spool.search import sqlite as search

    monkeypatch.setattr(search, "REQUEST_TIMEOUT_SECONDS", 0.2)
    idx = SqliteIndex(tmp_path / "search.db")
    assert idx.upsert(post(version=1, title="first")) is True
    blocker = sqlite3.connect(tmp_path / "search.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock
    try:
        with pytest.raises(IndexUnavailable, match="locked"):
            idx.upsert(post(version=2, title="second"))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert idx.upsert(post(version=2, title="second")) is True
    assert (idx.get("p1").version, idx.get("p1").title) == (2, "second")
    assert idx.search("second") == ["p1"]
    idx.close()


def test_a_tombstone_keeps_a_retracted_post_out_whatever_arrives_late(index):
    """Unpublished at fence 6: the publish's retry at fence 5 and a publish started on its
    own (fenced by its version) never bring it back; a newer publish does."""
    assert index.upsert(PostDocument(**{**post().__dict__, "fence": 5}))
    assert index.retract("p1", 6) is True
    assert index.retract("p1", 6) is False  # a repeat
    assert index.upsert(PostDocument(**{**post().__dict__, "fence": 5})) is False
    assert index.upsert(post(version=3)) is False
    index.refresh()
    assert index.get("p1") is None
    assert index.search("hello", 10) == []
    assert index.upsert(PostDocument(**{**post(version=2, title="Back").__dict__, "fence": 7}))
    index.refresh()
    back = index.get("p1")
    assert back is not None and back.version == 2 and back.title == "Back"
    assert index.search("back", 10) == ["p1"]


def test_an_index_file_from_before_fences_keeps_its_posts(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """CREATE TABLE posts (post_id TEXT PRIMARY KEY, version INTEGER NOT NULL,
                   author_id TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL,
                   tags TEXT NOT NULL, published_at TEXT);
               CREATE VIRTUAL TABLE posts_fts USING fts5(title, body, tags);
               INSERT INTO posts VALUES ('p1', 3, 'alice', 'Old', 'Kept.', '[]', NULL);
               INSERT INTO posts_fts (rowid, title, body, tags) VALUES (1, 'Old', 'Kept.', '');"""
        )
    index = SqliteIndex(path)
    try:
        assert index.get("p1").version == 3 and index.search("kept", 5) == ["p1"]
        assert index.upsert(post(version=2)) is False  # its version is its fence
        assert index.retract("p1", 4) is True and index.get("p1") is None
    finally:
        index.close()
