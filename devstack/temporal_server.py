"""Build and run the Temporal server a deployment runs: `temporal-server` on PostgreSQL.

The embedded stack (``make up``, ``make demo``, most tests) runs the Temporal *dev* server
(devstack/temporal.py). ``make cluster`` runs this instead: the server built from source
(``go install go.temporal.io/server/cmd/server@v1.29.1``, the version docker-compose.yml's
image is pinned to) with persistence and visibility on the cluster's PostgreSQL, and its four
services (history, matching, frontend, worker) as separate processes, so each can be killed
and restarted alone. It is configured as docker-compose.yml configures its ``temporal``
service: the same environment (DB, POSTGRES_*, DYNAMIC_CONFIG_FILE_PATH, read from the
compose file) rendered by the server's own config template (``config/docker.yaml`` of the
server module, which the server renders itself: ``# enable-template``), the same dynamic
config file (deploy/temporal/dynamicconfig.yaml), the schema set up by the same
deploy/temporal/setup-schema.sh with ``temporal-sql-tool``, and the namespace and search
attributes by the same deploy/temporal/setup-namespace.sh.

Built once into ``.cache/temporal-server/``, by ``make test`` or the first ``make cluster``:
several minutes the first time on a machine; Go's own module and build caches are the user's
(as Maven's repository is for Elasticsearch), so another checkout on the same machine links
the binaries in well under a minute.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from devstack.postgres import PostgresServer, find_pg_bin
from devstack.proc import StackError, free_port, start_process, stop_process, wait_for_port
from devstack.temporal import SEARCH_ATTRIBUTES, find_temporal_binary

SERVER_VERSION = "v1.29.1"
MODULE = "go.temporal.io/server"
# Binary name in the release -> package of the server module that builds it.
PACKAGES = {"temporal-server": "cmd/server", "temporal-sql-tool": "cmd/tools/sql"}
REPO = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO / ".cache" / "temporal-server"
RELEASE_DIR = CACHE_DIR / SERVER_VERSION
COMPOSE_FILE = REPO / "docker-compose.yml"
DEPLOY_DIR = REPO / "deploy" / "temporal"
# Started in this order: history and matching own the state the frontend routes to.
SERVICES = ("history", "matching", "frontend", "worker")
# Env var names of docker.yaml's per-service ports (service -> grpc, membership).
PORT_VARS = {
    "frontend": ("FRONTEND_GRPC_PORT", "FRONTEND_MEMBERSHIP_PORT"),
    "history": ("HISTORY_GRPC_PORT", "HISTORY_MEMBERSHIP_PORT"),
    "matching": ("MATCHING_GRPC_PORT", "MATCHING_MEMBERSHIP_PORT"),
    "worker": ("WORKER_GRPC_PORT", "WORKER_MEMBERSHIP_PORT"),
}
# docker-compose.yml's Temporal role; devstack's PostgreSQL trusts loopback, so its password
# is never checked (the compose one comes from .env).
LOOPBACK_PASSWORD = "unused-with-trust-auth"


def free_membership_port() -> int:
    """A free loopback port below 32768: the server keeps membership ports in a PostgreSQL
    smallint, and the kernel's own free ports (32768 and up) overflow it."""
    for _ in range(500):
        port = random.randint(20000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise StackError("no free port below 32768 for the Temporal services' membership")


def _go() -> str:
    found = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if found is None:
        raise StackError("temporal-server is built with Go: no `go` on PATH (install Go 1.24+)")
    return found


def _go_env(gobin: Path) -> dict[str, str]:
    # Go's module and build caches stay the user's: shared by every checkout on the machine.
    return {**os.environ, "GOBIN": str(gobin), "CGO_ENABLED": "0"}


def module_source() -> Path:
    """The server module's source in the Go module cache (its config template, its schema)."""
    cache = subprocess.run(
        [_go(), "env", "GOMODCACHE"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.strip()
    return Path(cache) / f"{MODULE}@{SERVER_VERSION}"


def ensure_release() -> Path:
    """``.cache/temporal-server/<version>/``: bin/ (temporal-server, temporal-sql-tool),
    config/docker.yaml and schema/, laid out as the server image lays out /etc/temporal.
    Built once; renamed into place, so a parallel run never sees half of it."""
    if (RELEASE_DIR / "bin" / "temporal-server").exists():
        return RELEASE_DIR
    staging = CACHE_DIR / f".build-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "bin").mkdir(parents=True)
    try:
        for name, package in PACKAGES.items():
            target = f"{MODULE}/{package}@{SERVER_VERSION}"
            built = subprocess.run(
                [_go(), "install", target],
                env=_go_env(staging / "gobin"),
                capture_output=True,
                text=True,
                timeout=3600,
            )
            if built.returncode != 0:
                raise StackError(f"go install {target} failed:\n{built.stderr[-2000:]}")
            os.replace(staging / "gobin" / Path(package).name, staging / "bin" / name)
        shutil.rmtree(staging / "gobin")
        (staging / "config").mkdir()
        shutil.copy(module_source() / "config" / "docker.yaml", staging / "config")
        shutil.copytree(module_source() / "schema", staging / "schema")
        try:
            os.rename(staging, RELEASE_DIR)
        except OSError:  # another run finished first: its release is as good as ours
            if not (RELEASE_DIR / "bin" / "temporal-server").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return RELEASE_DIR


def compose_service(name: str) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(COMPOSE_FILE.read_text())["services"][name]


def compose_mount_source(service: dict[str, Any], container_path: str) -> Path:
    """The file of this repository that compose mounts at container_path."""
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if target == container_path:
            return (REPO / source).resolve()
    raise StackError(f"docker-compose.yml mounts nothing at {container_path}")


def server_environment(pg_port: int, ports: dict[str, tuple[int, int]]) -> dict[str, str]:
    """docker-compose.yml's environment of its temporal service, with this machine's
    addresses: the same variables, rendered by the same template."""
    service = compose_service("temporal")
    env = {key: str(value) for key, value in service["environment"].items()}
    env.update(
        {
            "POSTGRES_SEEDS": "127.0.0.1",
            "DB_PORT": str(pg_port),
            "POSTGRES_PORT": str(pg_port),
            "POSTGRES_PWD": LOOPBACK_PASSWORD,
            "BIND_ON_IP": "127.0.0.1",
            "TEMPORAL_BROADCAST_ADDRESS": "127.0.0.1",
            "DYNAMIC_CONFIG_FILE_PATH": str(
                compose_mount_source(service, env["DYNAMIC_CONFIG_FILE_PATH"])
            ),
            "LOG_LEVEL": "warn",
        }
    )
    for name, (grpc, membership) in ports.items():
        grpc_var, membership_var = PORT_VARS[name]
        env.update({grpc_var: str(grpc), membership_var: str(membership)})
    env["FRONTEND_HTTP_PORT"] = str(free_port())
    return env


def run_script(script: Path, env: dict[str, str], log_path: Path, timeout: float) -> None:
    """Run one of deploy/temporal's one-shot scripts, as compose runs it, output to the log."""
    with open(log_path, "ab") as log:
        done = subprocess.run(
            ["/bin/sh", str(script)],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
    if done.returncode != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-15:]
        raise StackError(f"{script.name} failed; last lines of {log_path}:\n" + "\n".join(tail))


class TemporalServer:
    """temporal-server on ``postgres``: one process per service, frontend on ``port``."""

    def __init__(
        self, postgres: PostgresServer, port: int, log_dir: Path, namespace: str = "default"
    ) -> None:
        self.postgres = postgres
        self.port = port
        self.log_dir = Path(log_dir)
        self.namespace = namespace
        self.ports = {
            name: (port if name == "frontend" else free_port(), free_membership_port())
            for name in SERVICES
        }
        self.procs: dict[str, subprocess.Popen | None] = dict.fromkeys(SERVICES)
        self.release: Path | None = None
        self._env: dict[str, str] = {}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_path(self, service: str) -> Path:
        return self.log_dir / f"temporal-{service}.log"

    def start(self, timeout: float = 180.0) -> TemporalServer:
        self.release = ensure_release()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._create_role()
        self._setup_schema()
        self._env = server_environment(self.postgres.port, self.ports)
        try:
            for service in SERVICES:
                self.start_service(service, timeout)
            self._setup_namespace()
        except BaseException:
            self.stop()
            raise
        return self

    def _create_role(self) -> None:
        """The `temporal` role deploy/postgres/init-databases.sh creates for compose."""
        subprocess.run(
            [
                str(find_pg_bin() / "psql"),
                "--no-psqlrc",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.postgres.port),
                "-U",
                "spool",
                "-d",
                "spool",
                "-c",
                "DO $$ BEGIN CREATE ROLE temporal LOGIN CREATEDB; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END $$;",
            ],
            check=True,
            capture_output=True,
        )

    def _setup_schema(self) -> None:
        assert self.release is not None
        job = compose_service("temporal-schema")["environment"]
        run_script(
            DEPLOY_DIR / "setup-schema.sh",
            {
                "SQL_HOST": "127.0.0.1",
                "SQL_PORT": str(self.postgres.port),
                "SQL_USER": str(job["SQL_USER"]),
                "SQL_PASSWORD": LOOPBACK_PASSWORD,
                "TEMPORAL_SCHEMA_DIR": str(self.release / "schema" / "postgresql" / "v12"),
                "PATH": f"{self.release / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            },
            self.log_dir / "temporal-schema.log",
            timeout=600,
        )

    def _setup_namespace(self) -> None:
        cli_dir = Path(find_temporal_binary()).parent
        run_script(
            DEPLOY_DIR / "setup-namespace.sh",
            {
                "TEMPORAL_ADDRESS": self.address,
                "TEMPORAL_NAMESPACE": self.namespace,
                "SEARCH_ATTRIBUTES": " ".join(f"{k}={v}" for k, v in SEARCH_ATTRIBUTES.items()),
                "PATH": f"{cli_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            },
            self.log_dir / "temporal-namespace.log",
            timeout=600,
        )

    def service_argv(self, service: str) -> list[str]:
        assert self.release is not None
        return [
            str(self.release / "bin" / "temporal-server"),
            "--root",
            str(self.release),
            "--config",
            "config",
            "--env",
            "docker",
            "--allow-no-auth",
            "start",
            "--service",
            service,
        ]

    def start_service(self, service: str, timeout: float = 180.0) -> None:
        """Start one service (again) and wait until its gRPC port accepts."""
        running = self.procs[service]
        if running is not None and running.poll() is None:
            raise StackError(f"temporal {service} is already running")
        proc = start_process(self.service_argv(service), self.log_path(service), env=self._env)
        self.procs[service] = proc
        # The worker service serves no gRPC of its own until it has joined; its membership
        # port says it runs. The others serve gRPC as soon as they can take requests.
        port = self.ports[service][1 if service == "worker" else 0]
        wait_for_port(port, timeout, proc, f"temporal {service}", self.log_path(service))

    def kill_service(self, service: str) -> None:
        """SIGKILL one service (a machine lost, not a clean stop)."""
        proc = self.procs[service]
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.procs[service] = None

    def stop(self) -> None:
        for service in reversed(SERVICES):
            stop_process(self.procs[service])
            self.procs[service] = None

    def __enter__(self) -> TemporalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> int:
    """``python -m devstack.temporal_server``: build the release (make install runs this)."""
    try:
        print(f"temporal-server {SERVER_VERSION}: {ensure_release()}", flush=True)
    except StackError as exc:
        print(f"temporal-server: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
