"""Download, start and stop a real S3-compatible server (S3Proxy) for tests and local runs.

S3Proxy (Apache 2.0, https://github.com/gaul/s3proxy) speaks the S3 API, signatures included,
over Apache jclouds; its ``filesystem-nio2`` provider keeps each bucket as a directory, so the
data survives a stop and a restart. Maven Central publishes it as one shaded jar
(``jar-with-dependencies``), which runs on the system Java 17.

Run one in the foreground: ``python -m devstack.s3proxy`` (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from devstack import maven
from devstack.proc import StackError, require_free_port, start_process, stop_process, wait_until

S3PROXY_VERSION = "2.7.0"
CLASSIFIER = "jar-with-dependencies"
MAVEN_ARTIFACT = f"org.gaul:s3proxy:{S3PROXY_VERSION}:jar:{CLASSIFIER}"
REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache" / "s3proxy"
# A small heap is plenty: S3Proxy streams bodies to disk. Serial GC starts fastest.
JVM_OPTIONS = [
    "-Xms64m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    # no logback status dump at every start
    "-Dlogback.statusListenerClass=ch.qos.logback.core.status.NopStatusListener",
]
DEFAULT_PORT = 9000


def _fetch_jar() -> Path:
    """The shaded jar in the local Maven repository, downloaded with mvn if missing."""
    path = maven.local_path(
        "org.gaul", "s3proxy", S3PROXY_VERSION, f"s3proxy-{S3PROXY_VERSION}-{CLASSIFIER}.jar"
    )
    return maven.fetch(MAVEN_ARTIFACT, path, f"S3Proxy {S3PROXY_VERSION}")


def ensure_jar() -> Path:
    """The S3Proxy jar under .cache/s3proxy/, fetched once; later runs need no network."""
    cached = CACHE_DIR / f"s3proxy-{S3PROXY_VERSION}.jar"
    if cached.exists():
        return cached
    source = _fetch_jar()
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # Copy beside the target and rename, so a parallel run never starts a half-copied jar.
    staging = CACHE_DIR / f".copy-{os.getpid()}.jar"
    try:
        shutil.copyfile(source, staging)
        os.replace(staging, cached)
    finally:
        staging.unlink(missing_ok=True)
    return cached


def java() -> str:
    for var in ("JAVA_HOME", "ES_JAVA_HOME"):
        if os.environ.get(var):
            return str(Path(os.environ[var]) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise StackError("S3Proxy needs Java 17+: no `java` on PATH and no JAVA_HOME")
    return found


class S3ProxyServer:
    """One S3Proxy on 127.0.0.1:port, signature-checked with (access_key, secret_key), its
    buckets under data_dir/buckets. stop() then start() serves the same objects again."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        log_path: Path,
        access_key: str = "spool-dev",
        secret_key: str = "spool-dev-secret",
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port
        self.log_path = Path(log_path)
        self.access_key = access_key
        self.secret_key = secret_key
        self.proc: subprocess.Popen | None = None
        self.startup_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def buckets_dir(self) -> Path:
        return self.data_dir / "buckets"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _properties(self) -> dict[str, str]:
        return {
            "s3proxy.endpoint": self.url,
            # v2 or v4 signatures, checked against the caller's key pair: signing is exercised.
            "s3proxy.authorization": "aws-v2-or-v4",
            "s3proxy.identity": self.access_key,
            "s3proxy.credential": self.secret_key,
            "jclouds.provider": "filesystem-nio2",
            "jclouds.filesystem.basedir": str(self.buckets_dir),
            # The provider wants a key pair of its own; nothing checks it.
            "jclouds.identity": "local",
            "jclouds.credential": "local",
        }

    def _write_properties(self) -> Path:
        path = self.data_dir / "s3proxy.properties"
        lines = [f"{key}={value}" for key, value in self._properties().items()]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the secret
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 120) -> S3ProxyServer:
        require_free_port(self.port, "S3Proxy")
        started = time.monotonic()
        jar = ensure_jar()
        self.buckets_dir.mkdir(parents=True, exist_ok=True)
        properties = self._write_properties()
        argv = [java(), *JVM_OPTIONS, "-jar", str(jar), "--properties", str(properties)]
        self.proc = start_process(argv, self.log_path, cwd=self.data_dir)
        try:
            wait_until(self.healthy, timeout, self.proc, "S3Proxy", self.log_path)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def healthy(self) -> bool:
        """Any S3 answer counts: an unsigned request gets 403 AccessDenied once it listens."""
        try:
            with urllib.request.urlopen(self.url + "/", timeout=3):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.proc, timeout=15)
        self.proc = None

    def restart(self, timeout: float = 120) -> S3ProxyServer:
        """Stop and start again on the same port and data (for fault tests)."""
        self.stop()
        return self.start(timeout)

    def env(self, bucket: str = "spool", prefix: str = "") -> dict[str, str]:
        """SPOOL_* variables that point Spool at this server."""
        url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        return {
            "SPOOL_STORAGE_URL": url,
            "SPOOL_S3_ENDPOINT_URL": self.url,
            "SPOOL_S3_REGION": "us-east-1",
            "SPOOL_S3_ACCESS_KEY_ID": self.access_key,
            "SPOOL_S3_SECRET_ACCESS_KEY": self.secret_key,
        }

    def __enter__(self) -> S3ProxyServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def create_bucket(server: S3ProxyServer, bucket: str) -> None:
    from spool.config import Settings
    from spool.storage.s3 import S3Storage

    env = server.env(bucket)
    settings = Settings(
        storage_url=env["SPOOL_STORAGE_URL"],
        s3_endpoint_url=server.url,
        s3_region="us-east-1",
        s3_access_key_id=server.access_key,
        s3_secret_access_key=server.secret_key,
    )
    S3Storage.from_settings(settings).ensure_bucket()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description="Run S3Proxy in the foreground until Ctrl-C.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--data", type=Path, default=REPO_ROOT / "var" / "s3proxy")
    parser.add_argument("--bucket", default="spool", help="created if missing")
    parser.add_argument("--access-key", default="spool-dev")
    parser.add_argument("--secret-key", default="spool-dev-secret")
    args = parser.parse_args()
    server = S3ProxyServer(
        args.data.resolve(),
        args.port,
        args.data.resolve() / "s3proxy.log",
        args.access_key,
        args.secret_key,
    )
    server.start()
    try:
        create_bucket(server, args.bucket)
        print(
            f"S3Proxy {S3PROXY_VERSION} at {server.url} (started in "
            f"{server.startup_seconds:.1f}s), objects under {server.buckets_dir}, "
            f"log {server.log_path}"
        )
        print("Point Spool at it with:")
        for key, value in server.env(args.bucket).items():
            print(f"  export {key}={value}")
        print("Ctrl-C stops it.", flush=True)
        signal.signal(signal.SIGTERM, _interrupt)
        assert server.proc is not None
        print(f"S3Proxy exited with code {server.proc.wait()}; see {server.log_path}")
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
