"""`make up` as a person runs it: starts everything, says where it is, Ctrl-C stops it all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from devstack.proc import free_port, port_in_use

REPO = Path(__file__).resolve().parent.parent


def start_up(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "SPOOL_DATA_DIR": str(tmp_path / "var"),
           "SPOOL_API_PORT": str(free_port())}
    return subprocess.Popen([sys.executable, "-m", "devstack.up", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_until(proc: subprocess.Popen, text: str, timeout: float = 180) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"never printed {text!r}; got:\n{''.join(seen)}")


def test_up_serves_the_ui_and_api_and_ctrl_c_stops_everything(tmp_path):
    temporal_port, ui_port = free_port(), free_port()
    proc = start_up(tmp_path, "--temporal-port", str(temporal_port), "--ui-port", str(ui_port))
    try:
        banner = read_until(proc, "Ctrl-C stops everything")
        assert f"http://localhost:{ui_port}" in banner
        assert httpx.get(f"http://localhost:{ui_port}", timeout=10).status_code == 200
        api = next(line.split()[-1] for line in banner.splitlines()
                   if "Spool web page" in line)
        assert httpx.get(api.rstrip("/") + "/healthz", timeout=10).status_code == 200
        assert (tmp_path / "var" / "temporal.db").exists()  # jobs survive a restart
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not port_in_use(temporal_port) and not port_in_use(ui_port)


def test_a_taken_port_is_one_clear_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = start_up(tmp_path, "--temporal-port", str(port), "--ui-port", str(free_port()))
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert f"port {port} is already in use" in output
    assert "Traceback" not in output
