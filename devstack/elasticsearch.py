"""Download, start and stop a real single-node Elasticsearch 8 for tests, bench and `make up`.

The distribution is Elastic's integ-test zip from Maven Central: the smallest official build
(no bundled JDK, no analysis-common, no ML), so it runs on the system Java 17 and starts fast.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from devstack import maven
from devstack.proc import StackError, free_port, require_free_port, start_process, stop_process

ES_VERSION = "8.19.7"
MAVEN_ARTIFACT = f"org.elasticsearch.distribution.integ-test-zip:elasticsearch:{ES_VERSION}:zip"
REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache" / "elasticsearch"
# Elasticsearch refuses to run as root; when we are root the node runs as this system user.
ES_USER = "spool-es"
HEAP = "-Xms512m -Xmx512m"


def _fetch_zip() -> Path:
    """The distribution zip in the local Maven repository, downloaded with mvn if missing."""
    path = maven.local_path(
        "org.elasticsearch.distribution.integ-test-zip",
        "elasticsearch",
        ES_VERSION,
        f"elasticsearch-{ES_VERSION}.zip",
    )
    return maven.fetch(MAVEN_ARTIFACT, path, f"Elasticsearch {ES_VERSION}")


def ensure_distribution() -> Path:
    """The unpacked distribution under .cache/elasticsearch/, unpacking it once."""
    home = CACHE_DIR / f"elasticsearch-{ES_VERSION}"
    if (home / "bin" / "elasticsearch").exists():
        return home
    zip_path = _fetch_zip()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # Unpack beside the target and rename, so a concurrent or interrupted run never sees half.
    staging = CACHE_DIR / f".unpack-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        if shutil.which("unzip"):
            subprocess.run(
                ["unzip", "-q", str(zip_path), "-d", str(staging)], check=True, timeout=600
            )
        else:  # zipfile drops the exec bits; restore them on the launch scripts
            import zipfile

            with zipfile.ZipFile(zip_path) as archive:
                archive.extractall(staging)
            for script in (staging / home.name / "bin").iterdir():
                script.chmod(0o755)
        try:
            os.rename(staging / home.name, home)
        except OSError:
            if not (home / "bin" / "elasticsearch").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return home


def java_home() -> str:
    """ES_JAVA_HOME for the node: the environment's, else the `java` on PATH resolved."""
    for var in ("ES_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            return os.environ[var]
    java = shutil.which("java")
    if java is None:
        raise StackError("Elasticsearch needs Java 17+: no `java` on PATH and no JAVA_HOME")
    return str(Path(java).resolve().parent.parent)


def _ensure_es_user() -> str | None:
    """The user the node runs as: None when not root, else an unprivileged system user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(ES_USER)
    except KeyError:
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ES_USER],
            capture_output=True,
            text=True,
        )
        # exit 9: created meanwhile by a parallel run
        if result.returncode not in (0, 9):
            raise StackError(
                f"cannot create user {ES_USER} to run Elasticsearch "
                f"(it refuses root): {result.stderr.strip()}"
            ) from None
    return ES_USER


def _check_reachable(path: Path, user: str) -> None:
    """The node's user must be able to enter every parent of its home (pytest's 0700 temp)."""
    for parent in path.resolve().parents:
        if not parent.stat().st_mode & 0o001:
            raise StackError(
                f"{parent} is not searchable by others, so user {user} cannot "
                f"reach the Elasticsearch home {path}; use a home outside it"
            )


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


class ElasticsearchNode:
    """One single-node cluster, security off, data and config in home_dir, bound to loopback."""

    def __init__(self, home_dir: Path, port: int, log_path: Path) -> None:
        self.home_dir = Path(home_dir)
        self.port = port
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen | None = None
        self.startup_seconds: float | None = None
        self._launched = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _settings(self) -> dict[str, str]:
        return {
            "cluster.name": "spool-dev",
            "node.name": "spool-es",
            "discovery.type": "single-node",
            "xpack.security.enabled": "false",
            "network.host": "127.0.0.1",
            "http.port": str(self.port),
            "transport.port": str(free_port()),
            "path.data": str(self.home_dir / "data"),
            "path.logs": str(self.home_dir / "logs"),
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            "action.destructive_requires_name": "false",
        }

    def _prepare_home(self, dist: Path, user: str | None) -> Path:
        config = self.home_dir / "config"
        if not config.exists():
            shutil.copytree(dist / "config", config)
        for sub in ("data", "logs", "tmp"):
            (self.home_dir / sub).mkdir(parents=True, exist_ok=True)
        if user is not None:
            _check_reachable(self.home_dir, user)
            _chown_tree(self.home_dir, user)
        return config

    def start(self, timeout: float = 180) -> ElasticsearchNode:
        return self.launch().wait_started(timeout)

    def launch(self) -> ElasticsearchNode:
        """Start the node's process and return at once; wait_started() waits until it serves,
        so a caller can start other servers while the JVM boots (half a minute or more)."""
        require_free_port(self.port, "Elasticsearch")
        self._launched = time.monotonic()
        dist = ensure_distribution()
        user = _ensure_es_user()
        self.home_dir.mkdir(parents=True, exist_ok=True)
        config = self._prepare_home(dist, user)
        env = {
            "ES_JAVA_HOME": java_home(),
            "ES_PATH_CONF": str(config),
            "ES_JAVA_OPTS": HEAP,
            "ES_TMPDIR": str(self.home_dir / "tmp"),
            "HOME": str(self.home_dir),
        }
        argv = [str(dist / "bin" / "elasticsearch")]
        argv += [f"-E{key}={value}" for key, value in self._settings().items()]
        # cwd = home_dir: jvm.options writes GC logs and crash files relative to it.
        self.proc = start_process(argv, self.log_path, env=env, cwd=self.home_dir, user=user)
        return self

    def wait_started(self, timeout: float = 180) -> ElasticsearchNode:
        """Once the launched node's cluster is yellow or green; stopped if it never is."""
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - self._launched
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise StackError(
                    f"Elasticsearch exited with code {self.proc.returncode}{self._log_tail()}"
                )
            if self.healthy():
                return
            time.sleep(0.25)
        raise StackError(f"Elasticsearch was not ready after {timeout:.0f}s{self._log_tail()}")

    def healthy(self) -> bool:
        url = f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=1s"
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                status = json.load(response).get("status")
        except (OSError, ValueError):
            return False
        return status in ("yellow", "green")

    def _log_tail(self, lines: int = 20) -> str:
        tails = []
        for path in (self.log_path, self.home_dir / "logs" / "spool-dev.log"):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                tails.append(f"; last lines of {path}:\n" + "\n".join(tail))
        return "".join(tails)

    def stop(self) -> None:
        stop_process(self.proc, timeout=30)
        self.proc = None

    def __enter__(self) -> ElasticsearchNode:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
