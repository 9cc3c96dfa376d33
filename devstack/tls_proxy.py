"""A TLS-terminating gRPC proxy (Debian's nginx) in front of a plaintext Temporal frontend.

The Temporal dev server only speaks plaintext gRPC; putting nginx in front of it gives a
secured endpoint that behaves like a self-hosted cluster with mTLS: the server presents a
certificate signed by a CA the client must trust, and (with a client CA) every client must
present a certificate signed by that CA, or nginx answers the gRPC call with HTTP 400.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from devstack.proc import StackError, start_process, stop_process, wait_for_port

# Temporal's long polls last up to ~70 s; nginx's default 60 s read timeout would cut every
# idle poll with a 504 and make workers reconnect once a minute.
GRPC_TIMEOUT_SECONDS = 600


def find_nginx() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if found is None:
        raise StackError(
            "nginx not installed (Debian package nginx-light or nginx; "
            "scripts/install-system.sh installs it)"
        )
    return found


def nginx_version(nginx: str) -> tuple[int, ...]:
    """(1, 22, 1) from `nginx -v`, which prints "nginx version: nginx/1.22.1" to stderr."""
    result = subprocess.run([nginx, "-v"], capture_output=True, text=True, timeout=30)
    found = re.search(r"nginx/(\d+(?:\.\d+)*)", result.stderr + result.stdout)
    return tuple(int(part) for part in found.group(1).split(".")) if found else (0,)


def http2_listen(port: int, version: tuple[int, ...]) -> str:
    """The listen line(s) for TLS + HTTP/2: `http2 on;` exists from 1.25.1, and from then on
    the older `listen ... http2` form logs a deprecation warning."""
    if version >= (1, 25, 1):
        return f"listen 127.0.0.1:{port} ssl;\n        http2 on;"
    return f"listen 127.0.0.1:{port} ssl http2;"


@dataclass(frozen=True)
class ProxyTls:
    """PEM files nginx serves with; client_ca set = clients must present a cert it signed."""

    server_cert: Path
    server_key: Path
    client_ca: Path | None = None


def nginx_config(
    *, prefix: Path, port: int, upstream: str, tls: ProxyTls, version: tuple[int, ...] = (1, 22)
) -> str:
    """A complete nginx.conf whose every path (pid, logs, temp files) is inside prefix."""
    # As root, nginx would switch its workers to `nobody`, who cannot read the temp dir the
    # keys live in; the proxy is a test fixture, so the workers simply stay root.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp_paths = "\n".join(
        f"    {kind}_temp_path {prefix}/temp/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    client_auth = ""
    if tls.client_ca is not None:
        client_auth = (
            f"        ssl_client_certificate {tls.client_ca};\n"
            "        ssl_verify_client on;\n"
            "        ssl_verify_depth 2;\n"
        )
    return f"""\
{user}daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {prefix}/logs/access.log;
{temp_paths}
    # gRPC messages (histories, payloads) can exceed nginx's 1 MB default body limit.
    client_max_body_size 0;
    # nginx closes an HTTP/2 connection after this many requests; workers make many.
    keepalive_requests 1000000;
    keepalive_timeout {GRPC_TIMEOUT_SECONDS}s;
    server {{
        {http2_listen(port, version)}
        ssl_certificate {tls.server_cert};
        ssl_certificate_key {tls.server_key};
        ssl_protocols TLSv1.2 TLSv1.3;
{client_auth}\
        location / {{
            grpc_pass grpc://{upstream};
            grpc_read_timeout {GRPC_TIMEOUT_SECONDS}s;
            grpc_send_timeout {GRPC_TIMEOUT_SECONDS}s;
        }}
    }}
}}
"""


class TlsProxy:
    """nginx in the foreground on 127.0.0.1:port, forwarding gRPC to upstream (host:port)."""

    def __init__(
        self, *, port: int, upstream: str, tls: ProxyTls, prefix: Path | None = None
    ) -> None:
        self.port = port
        self.upstream = upstream
        self.tls = tls
        self.prefix = prefix
        self.proc = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def error_log(self) -> Path | None:
        return None if self.prefix is None else self.prefix / "logs" / "error.log"

    def start(self, timeout: float = 30.0) -> TlsProxy:
        nginx = find_nginx()
        if self.prefix is None:
            self.prefix = Path(tempfile.mkdtemp(prefix="spool-tls-proxy-"))
        for sub in ("logs", "temp"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(
            nginx_config(
                prefix=self.prefix,
                port=self.port,
                upstream=self.upstream,
                tls=self.tls,
                version=nginx_version(nginx),
            )
        )
        # -e: nginx opens its error log before reading the config; keep that one inside the
        # prefix too instead of the system's /var/log/nginx.
        argv = [nginx, "-p", str(self.prefix), "-c", str(conf), "-e", str(self.error_log)]
        self.proc = start_process(argv, self.prefix / "logs" / "stdout.log")
        wait_for_port(self.port, timeout, self.proc, "nginx TLS proxy", self.error_log)
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def __enter__(self) -> TlsProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
