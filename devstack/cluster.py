"""A multi-host Spool on one machine: hosts that share nothing but the network.

``make cluster`` (``python -m devstack.cluster``) starts the shared services — PostgreSQL,
Elasticsearch 8, an S3-compatible server (S3Proxy) and the Temporal server a deployment runs
(``temporal-server`` on that PostgreSQL, one process per service: devstack/temporal_server.py)
— and then
Spool's hosts: the API, a pipeline worker, two media workers and a captions worker. Each host
is configured only from ``deploy/env/`` (the same files docker-compose.yml uses) plus the
services' addresses, and runs in its own mount namespace in which the cluster's directory is
replaced by an empty tmpfs holding only that host's home: no host can read another's scratch
files, the services' data or a shared upload directory, so any hidden shared-disk assumption
fails loudly. Files move between hosts only through object storage.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devstack.elasticsearch import ElasticsearchNode
from devstack.postgres import PostgresServer
from devstack.proc import (
    StackError,
    free_port,
    require_free_port,
    start_process,
    stop_process,
    wait_until,
)
from devstack.s3proxy import S3ProxyServer, create_bucket
from devstack.temporal_server import TemporalServer

REPO = Path(__file__).resolve().parent.parent
ENV_DIR = REPO / "deploy" / "env"
BUCKET = "spool"
CLUSTER_API_KEY = "spool-cluster-key"

# name -> (env file under deploy/env, worker.py queue kind or None for the API)
DEFAULT_HOSTS = {
    "api": ("api", None),
    "pipeline": ("worker-pipeline", "pipeline"),
    "media-1": ("worker-media", "media"),
    "media-2": ("worker-media", "media"),
    "captions": ("worker-captions", "captions"),
}

# Runs argv with the cluster root hidden behind an empty tmpfs, except this host's home,
# moved back in at its usual path. Positional: cluster root, host name, staging dir, argv...
_ISOLATE = """
set -e
root=$1 name=$2 stage=$3; shift 3
mount --bind "$root/hosts/$name" "$stage"
mount -t tmpfs -o mode=0755,size=64m spool-cluster "$root"
mkdir -p "$root/hosts/$name"
mount --move "$stage" "$root/hosts/$name"
cd "$root/hosts/$name"
exec "$@"
"""


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments and blanks skipped), as compose's env_file reads them."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            if not sep:
                raise StackError(f"{path}: not KEY=VALUE: {line!r}")
            values[key.strip()] = value.strip()
    return values


def isolation_prefix(root: Path, name: str, stage: Path) -> list[str]:
    """argv prefix that runs a command in a private mount namespace seeing only its home."""
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:  # an unprivileged user may still own a user + mount namespace
        unshare[1:1] = ["--user", "--map-root-user"]
    return [*unshare, "sh", "-c", _ISOLATE, "spool-host", str(root), name, str(stage)]


@dataclass
class Host:
    name: str
    env_file: str
    queue: str | None
    cpus: str | None = None  # taskset list, e.g. "1"
    proc: object = None

    @property
    def is_api(self) -> bool:
        return self.queue is None


@dataclass
class Cluster:
    root: Path
    api_port: int = 8100
    temporal_port: int = 7300
    hosts: dict[str, Host] = field(default_factory=dict)
    # Override what a kind of host runs (tests pace the media hosts' ffmpeg input).
    worker_module: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        if not self.hosts:
            self.hosts = {
                name: Host(name, env_file, queue)
                for name, (env_file, queue) in DEFAULT_HOSTS.items()
            }
        self.postgres: PostgresServer | None = None
        self.es: ElasticsearchNode | None = None
        self.s3: S3ProxyServer | None = None
        self.temporal: TemporalServer | None = None
        self._stage = Path(tempfile.mkdtemp(prefix="spool-cluster-stage-"))

    # --- addresses ---------------------------------------------------------------------

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def home(self, name: str) -> Path:
        return self.root / "hosts" / name

    def scratch(self, name: str) -> Path:
        return self.home(name) / "tmp"

    def topology_env(self) -> dict[str, str]:
        """What differs per topology: the services' addresses and the secrets."""
        assert self.postgres and self.es and self.s3 and self.temporal
        return {
            "SPOOL_TEMPORAL_ADDRESS": self.temporal.address,
            "SPOOL_TEMPORAL_TLS": "false",
            "SPOOL_DATABASE_URL": self.postgres.url,
            "SPOOL_ELASTICSEARCH_URL": self.es.url,
            **self.s3.env(BUCKET, "objects"),
            "SPOOL_API_KEYS": json.dumps([CLUSTER_API_KEY]),
        }

    def host_env(self, host: Host) -> dict[str, str]:
        env = {
            **read_env_file(ENV_DIR / "spool.env"),
            **read_env_file(ENV_DIR / f"{host.env_file}.env"),
            **self.topology_env(),
            **self.extra_env,
        }
        home = self.home(host.name)
        env.update(
            {
                "SPOOL_DATA_DIR": str(home / "data"),
                "TMPDIR": str(home / "tmp"),
                "HOME": str(home),
                "HF_HUB_OFFLINE": "1",
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(REPO),
            }
        )
        if host.is_api:
            env.update({"SPOOL_API_HOST": "127.0.0.1", "SPOOL_API_PORT": str(self.api_port)})
        return env

    def client_env(self) -> dict[str, str]:
        """For starter.py and curl on this machine: the API, and Temporal for status."""
        return {
            "SPOOL_API_URL": self.api_url,
            "SPOOL_API_KEY": CLUSTER_API_KEY,
            **{k: v for k, v in self.topology_env().items() if k != "SPOOL_API_KEYS"},
        }

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Cluster:
        require_free_port(self.api_port, "the cluster's API host")
        require_free_port(self.temporal_port, "the cluster's Temporal server")
        for sub in ("services", "hosts", "logs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        try:
            self._start_services()
            self.migrate()
            for host in self.hosts.values():
                self.start_host(host.name)
            self.wait_ready()
            self.write_client_env(self.root / "client.env")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_services(self) -> None:
        # Elasticsearch runs as an unprivileged user: its home must be reachable by it.
        es_home = self.root / "services" / "elasticsearch"
        es_home.mkdir(parents=True, exist_ok=True)
        for path in (self.root, self.root / "services"):
            path.chmod(path.stat().st_mode | 0o011)
        self.es = ElasticsearchNode(es_home, free_port(), self.logs / "elasticsearch.log")
        # Its JVM boots for half a minute or more, mostly while the others start: every
        # server is started from this thread (their parent-death signal is tied to it).
        self.es.launch()
        self.postgres = PostgresServer(free_port(), self.logs / "postgres.log").start()
        self.s3 = S3ProxyServer(
            self.root / "services" / "s3", free_port(), self.logs / "s3proxy.log"
        ).start()
        create_bucket(self.s3, BUCKET)
        self.temporal = TemporalServer(self.postgres, self.temporal_port, self.logs).start()
        self.es.wait_started()

    def migrate(self) -> None:
        """The schema, once, before any host starts (the hosts never migrate)."""
        import subprocess

        env = {**os.environ, **read_env_file(ENV_DIR / "spool.env"), **self.topology_env()}
        result = subprocess.run(
            [sys.executable, "-m", "spool.migrate"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise StackError(f"migrate failed: {(result.stderr or result.stdout).strip()}")

    def host_argv(self, host: Host) -> list[str]:
        if host.is_api:
            command = [sys.executable, "-m", "api"]
        else:
            module = self.worker_module.get(host.queue)
            entry = ["-m", module] if module else [str(REPO / "worker.py")]
            command = [sys.executable, *entry, "--queue", host.queue]
        if host.cpus is not None:
            command = ["taskset", "-c", host.cpus, *command]
        return [*isolation_prefix(self.root, host.name, self._stage / host.name), *command]

    def start_host(self, name: str) -> None:
        host = self.hosts[name]
        home = self.home(name)
        for sub in ("tmp", "data"):
            (home / sub).mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)
        (self._stage / name).mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        log.unlink(missing_ok=True)
        host.proc = start_process(self.host_argv(host), log, env=self.host_env(host), cwd=REPO)

    def restart_host(self, name: str, timeout: float = 180) -> None:
        """Start a stopped or killed host again and wait until it serves."""
        self.start_host(name)
        self._wait_host(self.hosts[name], timeout)

    def kill_host(self, name: str) -> None:
        """SIGKILL a host and everything it started (a machine lost, not a clean stop)."""
        proc = self.hosts[name].proc
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def wait_ready(self, timeout: float = 180) -> None:
        """The API answers /readyz and every worker host has said it polls."""
        for host in self.hosts.values():
            self._wait_host(host, timeout)

    def _wait_host(self, host: Host, timeout: float) -> None:
        log = self.logs / f"{host.name}.log"
        if host.is_api:
            wait_until(lambda: _ready(self.api_url), timeout, host.proc, f"host {host.name}", log)
        else:
            wait_until(
                lambda: log.exists() and "worker ready" in log.read_text(errors="replace"),
                timeout,
                host.proc,
                f"host {host.name}",
                log,
            )

    def write_client_env(self, path: Path) -> None:
        lines = [f"{key}={value}" for key, value in self.client_env().items()]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds secrets
        with os.fdopen(fd, "w") as out:
            out.write("# Source me: set -a; . " + str(path) + "; set +a\n")
            out.write("\n".join(lines) + "\n")

    def stop(self) -> None:
        for host in reversed(list(self.hosts.values())):
            stop_process(host.proc)
            host.proc = None
        for service in (self.temporal, self.s3, self.es, self.postgres):
            if service is not None:
                service.stop()
        shutil.rmtree(self._stage, ignore_errors=True)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ready(api_url: str) -> bool:
    with urllib.request.urlopen(f"{api_url}/readyz", timeout=5) as response:
        return response.status == 200


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(REPO / "var" / "cluster"))
    parser.add_argument("--api-port", type=int, default=8100)
    parser.add_argument("--temporal-port", type=int, default=7300)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    cluster = Cluster(
        Path(args.root),
        api_port=args.api_port,
        temporal_port=args.temporal_port,
    )
    started = time.monotonic()
    try:
        cluster.start()
    except StackError as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    env_file = cluster.root / "client.env"
    took = time.monotonic() - started
    print(
        f"""Spool cluster ready in {took:.0f} s; its hosts share nothing but the network.

  Spool API         {cluster.api_url}/docs   (write key: {CLUSTER_API_KEY})
  Temporal          {cluster.temporal.address}   (temporal-server: frontend, history,
                    matching and worker processes on PostgreSQL; logs: temporal-*.log)
  S3 (S3Proxy)      {cluster.s3.url}   bucket {BUCKET}
  Elasticsearch     {cluster.es.url}
  PostgreSQL        {cluster.postgres.url}
  hosts             {", ".join(cluster.hosts)}   (logs: {cluster.logs})

Try it from another terminal:
  set -a; . {env_file}; set +a
  .venv/bin/python starter.py video samples/speech.mp4 --api "$SPOOL_API_URL" --wait
  .venv/bin/python starter.py blog samples/posts/durable-pipelines.json --wait
  curl -s "$SPOOL_API_URL/v1/videos" | python3 -m json.tool

Ctrl-C stops everything.""",
        flush=True,
    )
    try:
        while True:
            for host in cluster.hosts.values():
                if host.proc is not None and host.proc.poll() is not None:
                    print(
                        f"cluster: host {host.name} exited with {host.proc.returncode}; "
                        f"see {cluster.logs / host.name}.log",
                        file=sys.stderr,
                        flush=True,
                    )
                    host.proc = None
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping the cluster…", flush=True)
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
