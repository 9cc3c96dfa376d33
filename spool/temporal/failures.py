"""A failed connection to Temporal, as one line that names the problem: unreachable address,
certificate not trusted, client certificate required or rejected, missing file and the
setting that named it, ..."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spool.temporal.plan import ConnectionPlan

MAX_DETAIL_CHARS = 300
NO_CONNECT = "cannot connect to Temporal"


class TemporalConnectError(RuntimeError):
    """Spool could not connect to Temporal; str() is one line naming the problem."""


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
    return f"cannot reach {at}: {one_line(detail)}", True


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
    return one_line(found.group(1) if found else detail)


def one_line(text: str) -> str:
    text = re.sub(r"^Failed client connect: ", "", " ".join(text.split()))
    return text if len(text) <= MAX_DETAIL_CHARS else text[:MAX_DETAIL_CHARS] + "..."
