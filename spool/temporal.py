"""The one way Spool's processes connect to Temporal.

Where and how to connect is merged from two places:

1. the `temporal` CLI's environment configuration (``temporalio.envconfig``): its profile
   file (TEMPORAL_CONFIG_FILE, default ~/.config/temporalio/temporal.toml; profile from
   SPOOL_TEMPORAL_PROFILE, else TEMPORAL_PROFILE, else "default") overlaid with its
   TEMPORAL_* environment variables;
2. Spool's own settings: every SPOOL_TEMPORAL_* value that was explicitly set wins, field by
   field.

A failed connection raises :class:`TemporalConnectError`, whose message is one line that
names the problem (unreachable address, certificate not trusted, client certificate
required or rejected, missing file and the setting that named it, ...).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.envconfig import ClientConfigProfile, DataSource
from temporalio.service import TLSConfig

from spool import observability
from spool.config import Settings

RETRY_INTERVAL_SECONDS = 0.3
MAX_DETAIL_CHARS = 300
NO_CONNECT = "cannot connect to Temporal"
# Where the SDK looks when TEMPORAL_CONFIG_FILE is unset (Linux; the OS config dir elsewhere).
DEFAULT_CLI_CONFIG_FILE = "~/.config/temporalio/temporal.toml"


class TemporalConnectError(RuntimeError):
    """Spool could not connect to Temporal; str() is one line naming the problem."""


@dataclass(frozen=True)
class PemInput:
    """One PEM input (CA bundle, client cert or key) and the setting it came from."""

    what: str  # "CA bundle", "client certificate", "client private key"
    setting: str  # the variable or profile field that configured it, for error messages
    path: Path | None = None
    data: bytes | None = None

    def describe(self) -> str:
        where = str(self.path) if self.path is not None else "inline data"
        return f"{self.what} {where} ({self.setting})"

    def read(self) -> bytes:
        """The PEM bytes; a missing, unreadable or non-PEM file is a one-line error."""
        try:
            pem = self.path.read_bytes() if self.path is not None else (self.data or b"")
        except FileNotFoundError:
            raise self.error("does not exist") from None
        except IsADirectoryError:
            raise self.error("is a directory") from None
        except OSError as exc:
            raise self.error(f"cannot be read: {exc.strerror}") from None
        # rustls would only say "UnknownIssuer" or "PrivateKeyParseError" for a wrong file.
        marker = b"PRIVATE KEY-----" if self.what == "client private key" else b"CERTIFICATE-----"
        if marker not in pem:
            raise self.error(f"is not PEM (no {marker.decode()})")
        return pem

    def error(self, problem: str) -> TemporalConnectError:
        return TemporalConnectError(f"{NO_CONNECT}: {self.describe()} {problem}")


@dataclass(frozen=True)
class ConnectionPlan:
    """Where and how to connect, after merging the temporal CLI's config and Spool's."""

    address: str
    namespace: str
    tls: bool = False
    server_ca: PemInput | None = None
    client_cert: PemInput | None = None
    client_key: PemInput | None = None
    server_name: str | None = None
    api_key: str | None = None
    rpc_metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def mtls(self) -> bool:
        return self.tls and self.client_cert is not None

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for Client.connect; reads (and checks) the PEM files."""
        kwargs: dict[str, Any] = {
            "target_host": self.address,
            "namespace": self.namespace,
            "tls": self.tls_config() if self.tls else False,
        }
        if self.api_key:
            kwargs["api_key"] = self.api_key
        if self.rpc_metadata:
            kwargs["rpc_metadata"] = dict(self.rpc_metadata)
        return kwargs

    def tls_config(self) -> TLSConfig:
        given, missing = None, ""
        if self.client_cert is not None and self.client_key is None:
            given, missing = self.client_cert, "client private key"
        elif self.client_key is not None and self.client_cert is None:
            given, missing = self.client_key, "client certificate"
        if given is not None:
            raise TemporalConnectError(
                f"{NO_CONNECT}: {given.describe()} is set but no {missing} is: mTLS needs both "
                "(SPOOL_TEMPORAL_TLS_CERT and SPOOL_TEMPORAL_TLS_KEY)"
            )
        return TLSConfig(
            server_root_ca_cert=self.server_ca.read() if self.server_ca else None,
            client_cert=self.client_cert.read() if self.client_cert else None,
            client_private_key=self.client_key.read() if self.client_key else None,
            domain=self.server_name,
        )


def load_cli_profile(
    settings: Settings, env: Mapping[str, str] | None = None
) -> ClientConfigProfile:
    """The temporal CLI's profile (file + TEMPORAL_* variables) from env (default: os.environ).

    A missing default file is no error; a named profile that does not exist or a malformed
    file is.
    """
    try:
        # The bridge takes a real dict, not os.environ.
        return ClientConfigProfile.load(
            profile=settings.temporal_profile or None,
            override_env_vars=None if env is None else dict(env),
        )
    except Exception as exc:  # noqa: BLE001 - the bridge raises its own ConfigError
        environ = os.environ if env is None else env
        config_file = environ.get("TEMPORAL_CONFIG_FILE") or DEFAULT_CLI_CONFIG_FILE
        profile_from = "SPOOL_TEMPORAL_PROFILE" if settings.temporal_profile else "TEMPORAL_PROFILE"
        raise TemporalConnectError(
            f"{NO_CONNECT}: the temporal CLI config {config_file} (profile from {profile_from}) "
            f"cannot be used: {_one_line(str(exc))}"
        ) from None


def connection_plan(settings: Settings, env: Mapping[str, str] | None = None) -> ConnectionPlan:
    """Merge the temporal CLI's config (the base) with explicitly set SPOOL_TEMPORAL_* values."""
    env = os.environ if env is None else env
    profile = load_cli_profile(settings, env)
    cli_tls = profile.tls
    spool_set = {name for name in settings.model_fields_set if getattr(settings, name) is not None}

    def spool_or_cli(name: str, cli_value: Any) -> Any:
        if name in spool_set or not cli_value:
            return getattr(settings, name)
        return cli_value

    spool_pem = {
        "server_ca": _spool_pem(settings, spool_set, "temporal_tls_ca", "CA bundle"),
        "client_cert": _spool_pem(settings, spool_set, "temporal_tls_cert", "client certificate"),
        "client_key": _spool_pem(settings, spool_set, "temporal_tls_key", "client private key"),
    }
    cli_pem = {
        "server_ca": _cli_pem(
            cli_tls and cli_tls.server_root_ca_cert,
            "CA bundle",
            "TEMPORAL_TLS_SERVER_CA_CERT",
            "server_ca_cert",
            env,
        ),
        "client_cert": _cli_pem(
            cli_tls and cli_tls.client_cert,
            "client certificate",
            "TEMPORAL_TLS_CLIENT_CERT",
            "client_cert",
            env,
        ),
        "client_key": _cli_pem(
            cli_tls and cli_tls.client_private_key,
            "client private key",
            "TEMPORAL_TLS_CLIENT_KEY",
            "client_key",
            env,
        ),
    }
    pem = {key: spool_pem[key] or cli_pem[key] for key in spool_pem}
    spool_secret = settings.temporal_api_key if "temporal_api_key" in spool_set else None
    spool_api_key = spool_secret.get_secret_value() if spool_secret is not None else None
    api_key = spool_api_key or profile.api_key or None
    server_name = spool_or_cli("temporal_tls_server_name", cli_tls and cli_tls.server_name)
    spool_asks_tls = any(
        name in spool_set
        for name in (
            "temporal_tls_ca",
            "temporal_tls_cert",
            "temporal_tls_key",
            "temporal_tls_server_name",
            "temporal_api_key",
        )
    )
    return ConnectionPlan(
        address=spool_or_cli("temporal_address", profile.address),
        namespace=spool_or_cli("temporal_namespace", profile.namespace),
        tls=_tls_enabled(settings.temporal_tls, spool_asks_tls, profile),
        server_name=server_name,
        api_key=api_key,
        rpc_metadata=profile.grpc_meta,
        **pem,
    )


def _tls_enabled(
    spool_tls: bool | None, spool_asks_tls: bool, profile: ClientConfigProfile
) -> bool:
    if spool_tls is not None:
        return spool_tls
    if spool_asks_tls:
        return True
    # The SDK's own rule: a [tls] section (or any TEMPORAL_TLS_* variable) turns TLS on unless
    # it says disabled; an API key alone turns it on too.
    if profile.tls is not None:
        return profile.tls.disabled is not True
    return bool(profile.api_key)


def _spool_pem(settings: Settings, spool_set: set[str], name: str, what: str) -> PemInput | None:
    if name not in spool_set:
        return None
    return PemInput(what, f"SPOOL_{name.upper()}", path=Path(getattr(settings, name)))


def _cli_pem(
    source: DataSource | None, what: str, env_prefix: str, toml_key: str, env: Mapping[str, str]
) -> PemInput | None:
    """A PEM input from the temporal CLI config, labelled with the variable that set it."""
    if not source:
        return None
    if isinstance(source, Path):
        setting = (
            f"{env_prefix}_PATH"
            if env.get(f"{env_prefix}_PATH")
            else f"tls.{toml_key}_path in the temporal CLI profile"
        )
        return PemInput(what, setting, path=source)
    setting = (
        f"{env_prefix}_DATA"
        if env.get(f"{env_prefix}_DATA")
        else f"tls.{toml_key}_data in the temporal CLI profile"
    )
    data = source.encode() if isinstance(source, str) else source
    return PemInput(what, setting, data=data)


async def connect(settings: Settings, *, wait_seconds: float = 0.0) -> Client:
    """Connect to Temporal; with wait_seconds, keep trying while the server starts up.

    Only failures that waiting can cure (refused, unreachable, proxy without upstream) are
    retried; a certificate or configuration problem fails at once.
    """
    plan = connection_plan(settings)
    # The process's metrics runtime and, when tracing is on, the tracing interceptor
    # (docs/observability.md); workers built from this client inherit it.
    kwargs = {**plan.connect_kwargs(), **observability.client_options()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        try:
            client = await Client.connect(**kwargs)
            # A frontend that accepts connections may still be loading the namespace.
            await client.workflow_service.get_system_info(GetSystemInfoRequest())
            return client
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear line
            message, retryable = diagnose_failure(str(exc), plan)
            if not retryable or loop.time() >= deadline:
                raise TemporalConnectError(message) from exc
            await asyncio.sleep(RETRY_INTERVAL_SECONDS)


def diagnose_failure(detail: str, plan: ConnectionPlan) -> tuple[str, bool]:
    """(one-line message, whether retrying may help) for an SDK connection error's text.

    The SDK reports tonic/rustls errors as Debug-formatted text; these are the shapes seen
    against a real TLS server and proxy (see tests/test_temporal_tls.py).
    """
    at = f"Temporal at {plan.address}"
    tls_failed = f"TLS handshake with {at} failed"
    if re.search(r"ConnectionRefused|Connection refused", detail):
        return f"cannot reach {at}: connection refused", True
    if re.search(r"dns error|lookup address", detail):
        return f"cannot reach {at}: host name not found", True
    if re.search(
        r"TimedOut|timed out|deadline has elapsed|DeadlineExceeded|TimeoutExpired", detail
    ):
        if not plan.tls and "after connection" in detail:
            # The port accepted the connection but no gRPC answer came: a TLS port waiting
            # for a ClientHello looks exactly like this (as does a very busy server).
            return (
                f"cannot reach {at}: no answer to plaintext gRPC (does it require TLS? "
                "then set SPOOL_TEMPORAL_TLS_CA or SPOOL_TEMPORAL_TLS=true)"
            ), True
        return f"cannot reach {at}: connection timed out", True
    if problem := _client_cert_problem(detail, plan):
        return f"{at} {problem}", False
    if "InvalidCertificate" in detail:
        problem = _server_cert_problem(detail, plan)
        return f"{tls_failed}: certificate verify failed: {problem}", False
    if re.search(r"InvalidMessage|CorruptMessage|InvalidContentType|WrongVersion", detail):
        return (
            f"{tls_failed}: the server did not answer with TLS (a plaintext port? "
            "then unset the TLS settings or set SPOOL_TEMPORAL_TLS=false)"
        ), False
    if "PrivateKeyParseError" in detail or "InconsistentKeys" in detail:
        key = plan.client_key.describe() if plan.client_key else "the client private key"
        return f"{tls_failed}: {key} is not a usable private key for the certificate", False
    if re.search(r"Unauthenticated|PermissionDenied", detail):
        return f"{at} refused the credentials: {_status_message(detail)}", False
    if (status := _http_status(detail)) in (502, 503, 504):
        return (
            f"cannot reach {at}: a proxy there answered HTTP {status} "
            "(Temporal behind it is down or starting)"
        ), True
    if not plan.tls and re.search(r"connection closed|Canceled|GoAway|h2 protocol", detail):
        # A TLS port answers a plaintext HTTP/2 preface with a TLS alert (a broken frame) or
        # by hanging up; only the hang-up might also be a server that is still starting.
        return (
            f"cannot reach {at}: the server does not speak plaintext gRPC (does it require "
            "TLS? then set SPOOL_TEMPORAL_TLS_CA or SPOOL_TEMPORAL_TLS=true)"
        ), (not re.search(r"GoAway|h2 protocol", detail))
    return f"cannot reach {at}: {_one_line(detail)}", True


# TLS alerts a server sends when it does not accept the client certificate it got.
CLIENT_CERT_ALERTS = re.compile(
    r"AlertReceived\((BadCertificate|UnknownCA|CertificateUnknown|"
    r"UnsupportedCertificate|CertificateExpired|AccessDenied)"
)


def _client_cert_problem(detail: str, plan: ConnectionPlan) -> str | None:
    """What the server said about our client certificate, if that is what failed.

    A Temporal server fails the handshake with a TLS alert; nginx (and other proxies that
    terminate TLS) finish the handshake and answer the call with HTTP 400 instead.
    """
    proxy_refused = plan.tls and _http_status(detail) == 400
    if (
        "CertificateRequired" in detail
        or (proxy_refused and not plan.mtls)
        or (CLIENT_CERT_ALERTS.search(detail) and not plan.mtls)
    ):
        return (
            "requires a client certificate (mTLS) and none was sent: set "
            "SPOOL_TEMPORAL_TLS_CERT and SPOOL_TEMPORAL_TLS_KEY"
        )
    sent = plan.client_cert if plan.mtls else None
    if sent is not None and (proxy_refused or CLIENT_CERT_ALERTS.search(detail)):
        return (
            f"rejected the client certificate: {sent.describe()} is not signed "
            "by a CA the server trusts, or has expired"
        )
    return None


def _server_cert_problem(detail: str, plan: ConnectionPlan) -> str:
    if "UnknownIssuer" in detail:
        trusted = (
            f"the {plan.server_ca.describe()}"
            if plan.server_ca
            else "a system-trusted CA (set SPOOL_TEMPORAL_TLS_CA to the CA that signed it)"
        )
        return f"the server's certificate is not signed by {trusted}"
    if "NotValidForName" in detail:
        expected = re.search(r'expected: \w+\("?([^")]+)', detail)
        name = expected.group(1) if expected else plan.server_name or plan.address
        return (
            f"the server's certificate is not valid for the name {name} "
            "(SPOOL_TEMPORAL_TLS_SERVER_NAME sets the name to check)"
        )
    if "Expired" in detail:
        return "the server's certificate has expired"
    kind = re.search(r"InvalidCertificate\((\w+)", detail)
    return f"the server's certificate was refused ({kind.group(1) if kind else 'invalid'})"


def _http_status(detail: str) -> int | None:
    """The HTTP status a non-gRPC answer (e.g. from a proxy) carried, if the error says so."""
    found = re.search(r"status: (\d{3}) [A-Z]", detail)
    return int(found.group(1)) if found else None


def _status_message(detail: str) -> str:
    found = re.search(r'message: "([^"]*)"', detail)
    return _one_line(found.group(1) if found else detail)


def _one_line(text: str) -> str:
    text = re.sub(r"^Failed client connect: ", "", " ".join(text.split()))
    return text if len(text) <= MAX_DETAIL_CHARS else text[:MAX_DETAIL_CHARS] + "..."


def exit_process(code: int) -> NoReturn:
    """Flush and exit without interpreter teardown.

    After a Temporal client has been used, the SDK's native runtime can abort during
    interpreter teardown (PyGILState_Release, sdk-python#300), turning a clean exit into a
    crash; command-line entry points end here instead.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
