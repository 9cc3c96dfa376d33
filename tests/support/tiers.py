"""Pytest plugin: every test belongs to exactly one tier, so `make test-fast` can run the tests
that need no server and a new test has to say what it needs.

- ``unit``: in this process, no server and no media tool (ffmpeg, Whisper); the inner loop.
- ``orchestration``: the Temporal dev server, with stand-in or light activities (SQLite,
  local files, stand-in receivers); no media tool and no other server.
- ``e2e``: real tools or servers end to end: ffmpeg, Whisper, Elasticsearch, PostgreSQL,
  S3Proxy, nginx, a browser, the whole stack or cluster.

A tier is a mark on the module (``pytestmark``), a class, a test or a fixture parameter; the
nearest one wins, so a module can say its tier once and a few of its tests another. Collection
fails for a test without a tier, and a test whose tier does not allow the servers or tools it
asks for fails: ``unit`` may not start a server or make clips, ``orchestration`` may not use
anything but the Temporal dev server.
"""

from __future__ import annotations

import pytest

TIERS = ("unit", "orchestration", "e2e")
_SERVERS = {"es_url", "postgres_url", "s3_server", "mailpit", "clips", "whisper_ready"}
# The fixtures that start a server or need a media tool, by the tiers they are refused in.
REFUSED = {"unit": _SERVERS | {"temporal_server"}, "orchestration": _SERVERS}
_RUNNING = pytest.StashKey[str]()


def nearest_tiers(item: pytest.Item) -> tuple[pytest.Item | None, set[str]]:
    """The nearest node (the test, its class, its module) with tier marks, and those tiers."""
    for node in item.listchain()[::-1]:
        found = {mark.name for mark in node.own_markers if mark.name in TIERS}
        if found:
            return node, found
    return None, set()


def tier_problem(item: pytest.Item, tiers: set[str]) -> str | None:
    """Why the test's tiers are wrong, or None."""
    if not tiers:
        return "no tier: mark the module (pytestmark) or the test unit, orchestration or e2e"
    if len(tiers) > 1:
        return f"two tiers on one node: {sorted(tiers)}"
    (tier,) = tiers
    refused = sorted(REFUSED.get(tier, set()) & set(item.fixturenames))
    if refused:
        return f"the {tier} tier may not use {', '.join(refused)}"
    return None


def _only_nearest(items: list[pytest.Item], tiers: dict[str, str]) -> None:
    """Leave each test its own tier mark alone, so that ``-m unit`` selects exactly the unit
    tier: a module's mark moves onto its tests that have none nearer."""
    parents = set()
    for item in items:
        node, _ = nearest_tiers(item)
        if node is not item:
            item.add_marker(tiers[item.nodeid])
        parents.update(item.listchain()[:-1])
    for parent in parents:
        parent.own_markers[:] = [m for m in parent.own_markers if m.name not in TIERS]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    problems, tiers = [], {}
    for item in items:
        _, found = nearest_tiers(item)
        problem = tier_problem(item, found)
        if problem:
            problems.append(f"{item.nodeid}: {problem}")
        else:
            (tiers[item.nodeid],) = found
    if problems:
        raise pytest.UsageError(
            "tests without a right tier (tests/support/tiers.py):\n  " + "\n  ".join(problems)
        )
    _only_nearest(items, tiers)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _, found = nearest_tiers(item)
    item.config.stash[_RUNNING] = next(iter(found))


def pytest_fixture_setup(fixturedef, request) -> None:
    """The same rule for fixtures asked for by name at run time (a parametrized fixture that
    starts PostgreSQL for one of its parameters, say)."""
    tier = request.config.stash.get(_RUNNING, None)
    if fixturedef.argname in REFUSED.get(tier, set()):
        pytest.fail(f"the {tier} tier may not use {fixturedef.argname}", pytrace=False)
