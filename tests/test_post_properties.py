"""The invariants of a post's life (docs/posts.md), as a stateful property: random publish /
edit / unpublish / republish / delete / schedule / reschedule / cancel operations on several
posts of several authors, some at once on the same post, with the worker SIGKILLed at random
points, against the dev server, PostgreSQL and Elasticsearch. At quiescence the authors'
counts, the records, the index and the notices must be what the model says.

Seeded (derandomized) and bounded (a few examples of a dozen steps) to fit CI.
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import run_state_machine_as_test

from tests.support.post_life_machine import post_life
from tests.support.post_machine import Faults, Stack

pytestmark = pytest.mark.e2e


# A dozen steps of a few examples, each with worker restarts, on a shared 2-core machine.
@pytest.mark.timeout(1500)
def test_every_invariant_holds_under_random_operations_and_killed_workers(
    settings, es_url, postgres_url, new_postgres_database
):
    s = settings.model_copy(
        update={
            "database_url": new_postgres_database(),
            "elasticsearch_url": es_url,
            "elasticsearch_index": f"posts-{uuid.uuid4().hex[:10]}",
        }
    )
    stack = Stack(s)
    faults = Faults()
    try:
        stack.start_worker()
        run_state_machine_as_test(
            post_life(stack, faults),
            settings=settings_for_ci(),
        )
    finally:
        stack.close()
    print(
        f"operations {faults.operations}, worker kills {faults.kills}, unacknowledged "
        f"{faults.unacknowledged}, refusals {faults.refusals}, violations {faults.violations}"
    )


def settings_for_ci():
    return hypothesis_settings(
        max_examples=4,
        stateful_step_count=12,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
