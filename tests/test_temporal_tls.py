"""Spool against a secured Temporal endpoint, for real: nginx terminates TLS (client certs
required) in front of the dev server, and connect(), starter.py and worker.py go through it.

Certificates are made here: a CA that signed the proxy's server cert (127.0.0.1, localhost)
and a client cert, plus a second CA the proxy does not trust with its own client cert.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio import workflow
from temporalio.worker import Worker

from devstack.proc import StackError, free_port
from devstack.tls_proxy import ProxyTls, TlsProxy, find_nginx
from spool.config import Settings
from spool.process import die_with_parent
from spool.temporal import TemporalConnectError, connect
from spool.temporal.failures import diagnose_failure
from spool.temporal.plan import connection_plan
from tests.support.paths import REPO
from tests.support.pki import Pair, issue_cert, make_ca
from tests.support.processes import run_starter, spool_variables
from tests.support.services import service_missing

pytestmark = pytest.mark.e2e

CLI_TIMEOUT = 180  # seconds; generous, the machine is shared


# --- certificates -------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path  # signed the proxy's server cert and the good client cert
    server: Pair
    client: Pair
    other_ca: Path  # trusted by nobody here
    rogue_client: Pair  # signed by other_ca


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, ca_cert, ca_key = make_ca(directory, "spool-test-ca")
    other, other_cert, other_key = make_ca(directory, "untrusted-ca")
    return Pki(
        ca=ca.cert,
        server=issue_cert(directory, "server", ca_cert, ca_key, server=True),
        client=issue_cert(directory, "client", ca_cert, ca_key, server=False),
        other_ca=other.cert,
        rogue_client=issue_cert(directory, "rogue", other_cert, other_key, server=False),
    )


@pytest.fixture(scope="module")
def tls_proxy(temporal_server, pki, tmp_path_factory):
    """nginx on a free port: TLS with the test CA's server cert, client certs required."""
    try:
        find_nginx()
    except StackError as exc:
        service_missing(str(exc))
    proxy = TlsProxy(
        port=free_port(),
        upstream=temporal_server.address,
        tls=ProxyTls(pki.server.cert, pki.server.key, client_ca=pki.ca),
        prefix=tmp_path_factory.mktemp("tls-proxy"),
    )
    try:
        proxy.start(timeout=60)
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(autouse=True)
def no_outside_temporal_config(monkeypatch, tmp_path):
    """Neither the developer's TEMPORAL_*/SPOOL_TEMPORAL_* variables nor their
    ~/.config/temporalio/temporal.toml may leak into these tests."""
    for name in list(os.environ):
        if name.startswith(("TEMPORAL_", "SPOOL_TEMPORAL_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "no-such-temporal.toml"))


# --- helpers ------------------------------------------------------------------------------


@workflow.defn(sandboxed=False)
class EchoWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return f"echo: {text}"


async def run_echo(client, task_queue: str) -> str:
    """Run EchoWorkflow with a worker on the same (TLS) client; returns its result."""
    async with Worker(client, task_queue=task_queue, workflows=[EchoWorkflow]):
        return await client.execute_workflow(
            EchoWorkflow.run, "over tls", id=f"echo-{uuid.uuid4().hex[:12]}", task_queue=task_queue
        )


def mtls_env(proxy, pki, *, cert: Pair | None = None, ca: Path | None = None) -> dict[str, str]:
    cert = cert or pki.client
    return {
        "SPOOL_TEMPORAL_ADDRESS": proxy.address,
        "SPOOL_TEMPORAL_TLS_CA": str(ca or pki.ca),
        "SPOOL_TEMPORAL_TLS_CERT": str(cert.cert),
        "SPOOL_TEMPORAL_TLS_KEY": str(cert.key),
    }


def child_env(connection: dict[str, str], data_dir: Path, task_queue: str) -> dict[str, str]:
    """The environment of a starter.py or worker.py that connects as ``connection`` says."""
    return {
        **os.environ,
        **spool_variables(data_dir=data_dir, queue_pipeline=task_queue),
        **connection,
    }


async def starter(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return await run_starter(env, *args, within=CLI_TIMEOUT)


async def run_worker_to_exit(env: dict[str, str]) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "worker.py", "--queue", "pipeline"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )


def write_post(directory: Path) -> Path:
    uid = uuid.uuid4().hex[:8]
    path = directory / f"tls-{uid}.json"
    path.write_text(
        json.dumps(
            {
                "post_id": f"tls-{uid}",
                "author_id": f"tls-author-{uid}",
                "title": "Over TLS",
                "body": "Through nginx",
                "followers": [],
            }
        )
    )
    return path


def assert_one_line_error(result: subprocess.CompletedProcess, prog: str, *phrases: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith(f"{prog}: "), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert [line for line in lines if line.startswith(f"{prog}: ")] == [lines[-1]]
    for phrase in phrases:
        assert phrase in lines[-1], lines[-1]


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "worker.py", "--queue", "pipeline"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=lambda: die_with_parent(signal.SIGTERM),
        )


async def wait_for_log_line(
    path: Path, text: str, proc: subprocess.Popen, within: float = 120
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while text not in (path.read_text(errors="replace") if path.exists() else ""):
        assert proc.poll() is None, f"worker exited {proc.returncode}: {path.read_text()}"
        assert loop.time() < deadline, f"no {text!r} in {path} after {within}s"
        await asyncio.sleep(0.2)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- connect() in process -----------------------------------------------------------------


async def test_connect_with_client_cert_runs_a_workflow_through_the_proxy(
    tls_proxy, pki, task_queue
):
    settings = Settings(
        temporal_address=tls_proxy.address,
        temporal_tls_ca=pki.ca,
        temporal_tls_cert=pki.client.cert,
        temporal_tls_key=pki.client.key,
        temporal_tls_server_name="localhost",
    )
    client = await connect(settings, wait_seconds=30)
    assert await run_echo(client, task_queue) == "echo: over tls"
    # The calls really went through nginx (the dev server itself has no TLS).
    calls = (tls_proxy.prefix / "logs" / "access.log").read_text()
    assert "/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution" in calls


async def test_api_key_is_accepted_with_tls(tls_proxy, pki, task_queue):
    # nginx ignores the Authorization header; this proves the key travels without breaking TLS.
    settings = Settings(
        temporal_address=tls_proxy.address,
        temporal_tls_ca=pki.ca,
        temporal_tls_cert=pki.client.cert,
        temporal_tls_key=pki.client.key,
        temporal_api_key=SecretStr("test-key"),
    )
    assert connection_plan(settings).api_key == "test-key"
    client = await connect(settings, wait_seconds=30)
    assert await run_echo(client, task_queue) == "echo: over tls"


@pytest.mark.parametrize(
    ("case", "phrase"),
    [
        ("no client cert", "requires a client certificate"),
        ("client cert from another CA", "rejected the client certificate"),
        ("server cert not trusted", "certificate verify failed"),
        ("wrong server name", "not valid for the name wrong.example"),
    ],
)
async def test_connect_failures_fail_at_once_with_one_line(tls_proxy, pki, case, phrase):
    fields = {
        "temporal_address": tls_proxy.address,
        "temporal_tls_ca": pki.ca,
        "temporal_tls_cert": pki.client.cert,
        "temporal_tls_key": pki.client.key,
    }
    if case == "no client cert":
        del fields["temporal_tls_cert"], fields["temporal_tls_key"]
    elif case == "client cert from another CA":
        fields |= {
            "temporal_tls_cert": pki.rogue_client.cert,
            "temporal_tls_key": pki.rogue_client.key,
        }
    elif case == "server cert not trusted":
        fields["temporal_tls_ca"] = pki.other_ca
    else:
        fields["temporal_tls_server_name"] = "wrong.example"
    # A long wait_seconds: certificate problems must not be retried until the deadline.
    task = asyncio.ensure_future(connect(Settings(**fields), wait_seconds=3600))
    with pytest.raises(TemporalConnectError) as failure:
        await asyncio.wait_for(task, 120)
    assert phrase in str(failure.value) and "\n" not in str(failure.value)


# --- starter.py ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "phrases"),
    [
        ("no client cert", ["requires a client certificate", "SPOOL_TEMPORAL_TLS_CERT"]),
        ("client cert from another CA", ["rejected the client certificate", "rogue.pem"]),
        ("missing cert file", ["nope.pem", "SPOOL_TEMPORAL_TLS_CERT", "does not exist"]),
        # nginx hangs up on a plaintext HTTP/2 preface; a loaded machine may time out first.
        # Either way the line must point at TLS.
        ("plaintext to a TLS port", ["plaintext gRPC", "does it require TLS"]),
    ],
)
async def test_starter_exits_4_with_one_line_on_tls_failures(
    tls_proxy, pki, tmp_path, case, phrases
):
    env = mtls_env(tls_proxy, pki)
    if case == "no client cert":
        del env["SPOOL_TEMPORAL_TLS_CERT"], env["SPOOL_TEMPORAL_TLS_KEY"]
    elif case == "client cert from another CA":
        env = mtls_env(tls_proxy, pki, cert=pki.rogue_client)
    elif case == "missing cert file":
        env["SPOOL_TEMPORAL_TLS_CERT"] = str(tmp_path / "nope.pem")
    else:
        env = {"SPOOL_TEMPORAL_ADDRESS": tls_proxy.address}
    result = await starter(child_env(env, tmp_path, "unused"), "status", "no-such-job")
    assert result.returncode == 4, result.stdout + result.stderr
    assert_one_line_error(result, "starter", *phrases)


async def test_starter_status_of_unknown_job_answers_over_mtls(tls_proxy, pki, tmp_path):
    # "no job" is the server's answer: the TLS connection and the call both went through.
    result = await starter(
        child_env(mtls_env(tls_proxy, pki), tmp_path, "unused"), "status", "no-such-job"
    )
    assert result.returncode == 4 and "no job with id no-such-job" in result.stderr


# --- worker.py ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "phrase"),
    [
        ("no client cert", "requires a client certificate"),
        ("client cert from another CA", "rejected the client certificate"),
    ],
)
async def test_worker_exits_4_with_one_line_on_bad_client_cert(
    tls_proxy, pki, tmp_path, task_queue, case, phrase
):
    env = mtls_env(tls_proxy, pki, cert=pki.rogue_client)
    if case == "no client cert":
        del env["SPOOL_TEMPORAL_TLS_CERT"], env["SPOOL_TEMPORAL_TLS_KEY"]
    # The default --connect-wait is 30 s; the exit must not wait for it (no deadline asserted,
    # only that a certificate problem is not treated as "server still starting").
    result = await run_worker_to_exit(child_env(env, tmp_path, task_queue))
    assert result.returncode == 4, result.stdout + result.stderr
    assert_one_line_error(result, "worker", phrase)


async def test_worker_and_starter_complete_a_blog_job_over_mtls(
    tls_proxy, pki, tmp_path, task_queue
):
    env = child_env(mtls_env(tls_proxy, pki), tmp_path / "data", task_queue)
    log = tmp_path / "worker.log"
    worker = start_worker(env, log)
    try:
        await wait_for_log_line(log, "worker ready", worker)
        started = await starter(env, "blog", str(write_post(tmp_path)), "--json")
        assert started.returncode == 0, started.stderr
        job_id = json.loads(started.stdout)["job_id"]
        waited = await starter(env, "wait", job_id, "--json")
        assert waited.returncode == 0, waited.stdout + waited.stderr + log.read_text()
        assert json.loads(waited.stdout)["state"] == "ready"
    finally:
        stop(worker)


# --- the temporal CLI's environment variables and profile file ------------------------------


async def test_temporal_cli_env_vars_alone_configure_mtls(tls_proxy, pki, task_queue, monkeypatch):
    monkeypatch.setenv("TEMPORAL_ADDRESS", tls_proxy.address)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(pki.ca))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(pki.client.cert))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(pki.client.key))
    settings = Settings()
    plan = connection_plan(settings)
    assert (plan.address, plan.tls, plan.client_cert.path) == (
        tls_proxy.address,
        True,
        pki.client.cert,
    )
    client = await connect(settings, wait_seconds=30)
    assert await run_echo(client, task_queue) == "echo: over tls"


def write_profiles(path: Path, proxy, pki) -> Path:
    tls = (
        f'server_ca_cert_path = "{pki.ca}"\n'
        f'client_cert_path = "{pki.client.cert}"\n'
        f'client_key_path = "{pki.client.key}"\n'
    )
    path.write_text(
        f'[profile.secure]\naddress = "{proxy.address}"\nnamespace = "default"\n'
        f"[profile.secure.tls]\n{tls}"
        # Same certificates, but a dead address and a namespace that does not exist.
        f'[profile.stale]\naddress = "127.0.0.1:1"\nnamespace = "no-such-namespace"\n'
        f"[profile.stale.tls]\n{tls}"
    )
    return path


async def test_temporal_cli_profile_file_configures_mtls(
    tls_proxy, pki, task_queue, tmp_path, monkeypatch
):
    monkeypatch.setenv(
        "TEMPORAL_CONFIG_FILE", str(write_profiles(tmp_path / "t.toml", tls_proxy, pki))
    )
    monkeypatch.setenv("SPOOL_TEMPORAL_PROFILE", "secure")
    client = await connect(Settings(), wait_seconds=30)
    assert await run_echo(client, task_queue) == "echo: over tls"


async def test_spool_settings_override_the_profile(
    tls_proxy, pki, task_queue, tmp_path, monkeypatch
):
    profiles = write_profiles(tmp_path / "t.toml", tls_proxy, pki)
    env = {"TEMPORAL_CONFIG_FILE": str(profiles), "SPOOL_TEMPORAL_PROFILE": "stale"}
    # The profile alone: its dead address is used...
    alone = await starter(child_env(env, tmp_path, task_queue), "status", "no-such-job")
    assert alone.returncode == 4
    assert_one_line_error(alone, "starter", "cannot reach Temporal at 127.0.0.1:1")
    # ...and SPOOL_TEMPORAL_ADDRESS / _NAMESPACE win over it, keeping the profile's TLS.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SPOOL_TEMPORAL_ADDRESS", tls_proxy.address)
    monkeypatch.setenv("SPOOL_TEMPORAL_NAMESPACE", "default")
    settings = Settings()
    plan = connection_plan(settings)
    assert (plan.address, plan.namespace, plan.tls) == (tls_proxy.address, "default", True)
    client = await connect(settings, wait_seconds=30)
    assert await run_echo(client, task_queue) == "echo: over tls"


@pytest.mark.unit
async def test_unknown_profile_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "none.toml"))
    with pytest.raises(TemporalConnectError, match="Profile 'nope' not found"):
        await connect(Settings(temporal_profile="nope"))


# --- precedence, without a server ---------------------------------------------------------


@pytest.mark.unit
def test_defaults_when_nothing_is_set():
    plan = connection_plan(Settings())
    assert (plan.address, plan.namespace, plan.tls, plan.api_key) == (
        "localhost:7233",
        "default",
        False,
        None,
    )


@pytest.mark.unit
def test_cli_env_is_the_base_and_explicit_spool_values_win(tmp_path):
    env = {
        "TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml"),
        "TEMPORAL_ADDRESS": "cli:7233",
        "TEMPORAL_NAMESPACE": "cli-ns",
        "TEMPORAL_API_KEY": "cli-key",
    }
    base = connection_plan(Settings(), env)
    assert (base.address, base.namespace, base.api_key, base.tls) == (
        "cli:7233",
        "cli-ns",
        "cli-key",
        True,
    )
    # Explicitly set, even to the default value, a Spool setting wins.
    spool = connection_plan(
        Settings(temporal_address="localhost:7233", temporal_namespace="spool-ns"), env
    )
    assert (spool.address, spool.namespace, spool.api_key) == (
        "localhost:7233",
        "spool-ns",
        "cli-key",
    )


@pytest.mark.unit
def test_tls_switch(tmp_path, pki):
    no_file = {"TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml")}
    assert connection_plan(Settings(temporal_tls_ca=pki.ca), no_file).tls
    assert connection_plan(Settings(temporal_api_key=SecretStr("k")), no_file).tls
    assert not connection_plan(Settings(temporal_tls=False, temporal_tls_ca=pki.ca), no_file).tls
    assert connection_plan(Settings(), {**no_file, "TEMPORAL_TLS": "true"}).tls
    # The CLI turns TLS off, but a CA set for Spool asks for it again.
    cli_off = {**no_file, "TEMPORAL_TLS": "false", "TEMPORAL_API_KEY": "k"}
    assert not connection_plan(Settings(), cli_off).tls
    assert connection_plan(Settings(temporal_tls_ca=pki.ca), cli_off).tls


@pytest.mark.unit
def test_half_a_client_cert_names_the_missing_setting(tmp_path, pki):
    plan = connection_plan(
        Settings(temporal_tls_cert=pki.client.cert),
        {"TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml")},
    )
    with pytest.raises(TemporalConnectError, match="no client private key") as failure:
        plan.connect_kwargs()
    assert "SPOOL_TEMPORAL_TLS_KEY" in str(failure.value)


@pytest.mark.unit
def test_not_a_pem_file_names_the_file_and_setting(tmp_path, pki):
    bogus = tmp_path / "ca.txt"
    bogus.write_text("not a certificate")
    plan = connection_plan(
        Settings(temporal_tls_ca=bogus), {"TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml")}
    )
    with pytest.raises(TemporalConnectError, match="is not PEM") as failure:
        plan.connect_kwargs()
    assert f"{bogus} (SPOOL_TEMPORAL_TLS_CA)" in str(failure.value)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("alert", "with_cert", "phrase"),
    [
        ("CertificateRequired", False, "requires a client certificate"),
        ("BadCertificate", True, "rejected the client certificate"),
        ("UnknownCA", True, "rejected the client certificate"),
    ],
)
def test_a_server_that_fails_the_handshake_is_diagnosed_like_the_proxy(
    tmp_path, pki, alert, with_cert, phrase
):
    # A Temporal server with mTLS (not a proxy) sends a TLS alert instead of HTTP 400; the
    # dev server has no TLS, so this shape of rustls error is checked without one.
    fields = {"temporal_address": "temporal.example:7233", "temporal_tls_ca": pki.ca}
    if with_cert:
        fields |= {"temporal_tls_cert": pki.client.cert, "temporal_tls_key": pki.client.key}
    plan = connection_plan(Settings(**fields), {"TEMPORAL_CONFIG_FILE": str(tmp_path / "x")})
    detail = (
        "Failed client connect: Server connection error: tonic::transport::Error(Transport,"
        f" ConnectError(Custom {{ kind: InvalidData, error: AlertReceived({alert}) }}))"
    )
    message, retryable = diagnose_failure(detail, plan)
    assert phrase in message and not retryable


@pytest.mark.unit
def test_a_plaintext_call_that_gets_no_answer_points_at_tls(tmp_path):
    """A TLS port that waits for a ClientHello (or a loaded proxy) lets a plaintext call
    time out after the TCP connection was accepted: the line still names TLS, and a retry
    may help (it may be a busy server). Seen on a loaded 2-core machine against nginx."""
    no_file = {"TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml")}
    detail = (
        "`get_system_info` call error after connection: Status { code: Cancelled, "
        'message: "Timeout expired", source: Some(tonic::transport::Error(Transport, '
        "TimeoutExpired(()))) }"
    )
    message, retryable = diagnose_failure(detail, connection_plan(Settings(), no_file))
    assert "does it require TLS" in message and retryable
    refused = "Connection refused (os error 111)"
    message, _ = diagnose_failure(refused, connection_plan(Settings(), no_file))
    assert message.endswith("connection refused")
    tls_plan = connection_plan(Settings(temporal_tls=True), no_file)
    message, retryable = diagnose_failure(detail, tls_plan)
    assert message.endswith("connection timed out") and retryable
