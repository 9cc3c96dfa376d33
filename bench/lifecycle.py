"""A soak of the post lifecycle: the property test's state machine (tests/support/
post_life_machine.py), run much longer, against its own dev server, PostgreSQL and
Elasticsearch, the worker SIGKILLed at random points.

    .venv/bin/python bench/lifecycle.py [--examples 20] [--steps 40] [--seed 19]

Prints the operations it sent, the faults it injected (worker kills, operations no worker
acknowledged in time), the refusals it expected, and the invariant violations found at each
example's quiescence (docs/posts.md): the last must be 0.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, seed, settings  # noqa: E402
from hypothesis.stateful import run_state_machine_as_test  # noqa: E402

from devstack.elasticsearch import ElasticsearchNode  # noqa: E402
from devstack.postgres import PostgresServer  # noqa: E402
from devstack.proc import free_port  # noqa: E402
from devstack.temporal import DevServer  # noqa: E402
from spool.config import Settings  # noqa: E402
from tests.support.post_life_machine import post_life  # noqa: E402
from tests.support.post_machine import Faults, Stack  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--examples", type=int, default=20)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=19)
    return parser.parse_args()


def soak(args: argparse.Namespace, tmp: Path) -> tuple[Faults, float]:
    tmp.chmod(0o755)  # as root, Elasticsearch runs as a user who must enter it
    logs = tmp / "logs"
    logs.mkdir()
    with (
        DevServer(
            port=free_port(), ui_port=None, db_filename=None, log_path=logs / "temporal.log"
        ) as server,
        PostgresServer(free_port(), logs / "postgres.log") as pg,
    ):
        es = ElasticsearchNode(tmp / "es", free_port(), logs / "es.log")
        es.start()
        try:
            s = Settings(
                _env_file=None,
                temporal_address=server.address,
                data_dir=tmp / "data",
                database_url=pg.url,
                elasticsearch_url=es.url,
                elasticsearch_index=f"soak-{uuid.uuid4().hex[:8]}",
                queue_pipeline="soak-pipeline",
            )
            stack, faults = Stack(s), Faults()
            started = time.monotonic()
            try:
                stack.start_worker()
                machine = seed(args.seed)(post_life(stack, faults))
                run_state_machine_as_test(
                    machine,
                    settings=settings(
                        max_examples=args.examples,
                        stateful_step_count=args.steps,
                        deadline=None,
                        database=None,
                        suppress_health_check=list(HealthCheck),
                    ),
                )
            finally:
                stack.close()
            return faults, time.monotonic() - started
        finally:
            es.stop()


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="spool-soak-") as tmp:
        faults, seconds = soak(args, Path(tmp))
    print(f"machine: {platform.machine()}, {platform.system()} {platform.release()}")
    print(f"examples {args.examples} x up to {args.steps} steps, seed {args.seed}: {seconds:.0f} s")
    print(f"operations: {faults.operations}")
    print(f"faults: worker kills {faults.kills}, unacknowledged {faults.unacknowledged}")
    print(f"refusals (expected by the model): {faults.refusals}")
    print(f"violations: {faults.violations}")
    return 0 if faults.violations == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
