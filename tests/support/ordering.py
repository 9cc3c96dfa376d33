"""Pytest plugin: the longest test modules first.

``make test`` runs two processes that each take a whole module at a time (pytest-xdist,
``--dist loadfile``), in collection order: a long module collected last would run alone at
the end while the other process idles. Starting with the longest (measured, 2026-12-07) lets
the short ones fill in around them. The order within a module, and among the rest, stays.

pytest-xdist would otherwise hand out modules by their number of tests, most first
(``--loadscope-reorder``, its default): the one-test property module would then start last,
however long it is. So this plugin turns that off, and collection order is the order given.
"""

from __future__ import annotations

import pytest

LONGEST_FIRST = (
    # Seconds each took alone on the shared 2-core machine on 2026-12-07, under a load of 7-12
    # and of 1-5 (the property module: below 1), the start of its servers included.
    "test_cluster.py",  # 258, 160
    "test_cluster_temporal.py",  # 200, 147
    "test_faults_blog.py",  # 184, 174
    "test_faults_video.py",  # 90, 97
    "test_post_properties.py",  # -, 75
    "test_faults_stack.py",  # 94, 61
    "test_bad_input.py",
    "test_cli.py",
    "test_video_pipeline.py",
    "test_temporal_ui.py",
    "test_chunked_pipeline.py",
    "test_media.py",
    "test_deploys.py",
    "test_openapi.py",
    "test_browser.py",
    "test_stack.py",
)
_RANK = {name: rank for rank, name in enumerate(LONGEST_FIRST)}


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config.option, "loadscopereorder"):  # only with pytest-xdist
        config.option.loadscopereorder = False


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: _RANK.get(item.path.name, len(LONGEST_FIRST)))
