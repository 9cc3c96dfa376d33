"""Outbound webhooks: Standard Webhooks signatures and a guard against internal destinations.

A destination is checked twice: when a job carrying a callback URL is submitted (the API
answers 422) and again right before each delivery, because the name may resolve differently
by then. Every address the host resolves to must be public unless settings allow otherwise,
and some are never allowed whatever the settings say (cloud metadata, link-local, "this
network", multicast, reserved; also inside IPv6 forms that embed an IPv4 address). Every
delivery, HTTP or HTTPS, connects to the checked address itself (the name kept for the Host
header, TLS SNI and certificate verification), so a second lookup cannot swap it.

The ``webhook-id`` of a delivery is derived from the notification's business key, so every
retry of one event carries the same id and receivers can deduplicate.

A receiver is as untrusted as its address: a delivery reads at most MAX_RESPONSE_BYTES of the
answer and ends by ``webhook_deadline_seconds`` however the receiver paces its bytes, and its
errors and log lines name the destination by scheme and host only (``shown_url``), because a
subscriber URL often carries a token in its path and errors reach the public job status.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import json
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks import Webhook

from spool.config import Settings
from spool.observability.metrics import WEBHOOK_DELIVERIES, count_outcomes

MAX_URL_CHARS = 300  # the notification ledger's recipient column
# Of a receiver's answer only the status matters; this much of its body is read (from one
# socket read of at most 64 KiB), then the connection is closed.
MAX_RESPONSE_BYTES = 4096
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookRefused(ValueError):
    """A destination Spool will not send to; the message says why."""


class WebhookFailed(RuntimeError):
    """The receiver did not accept the delivery (retry later)."""


def is_webhook_url(recipient: str) -> bool:
    return recipient.startswith(("http://", "https://"))


def webhook_id(delivery_key: str) -> str:
    """A stable message id for one (event, destination): the same on every retry."""
    return "msg_" + hashlib.sha256(delivery_key.encode()).hexdigest()[:32]


def signer(secret: str) -> Webhook:
    """``whsec_<base64>`` secrets as Standard Webhooks defines them; other strings as raw bytes."""
    if secret.startswith("whsec_"):
        return Webhook(secret)
    return Webhook(secret.encode())


def new_secret() -> str:
    import secrets

    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


# Never a destination, whatever webhook_allow_private or webhook_allowlist say: cloud
# metadata services (which hand out credentials) and addresses that are not a host anywhere.
NEVER_NETWORKS = [
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        # link-local: AWS/GCP/Azure/OCI metadata 169.254.169.254, ECS 169.254.170.2
        "169.254.0.0/16",
        "100.100.100.200/32",  # Alibaba Cloud metadata (inside the shared 100.64.0.0/10)
        "168.63.129.16/32",  # Azure's host wireserver
        "192.0.0.0/24",  # IETF protocol assignments (Oracle Cloud Classic metadata 192.0.0.192)
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and 255.255.255.255 broadcast
        "::/128",  # unspecified
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "100::/64",  # discard-only
    )
]
# IPv6 prefixes that carry an IPv4 address in their low 32 bits and reach it: NAT64 (the
# well-known and the local-use prefix) and IPv4-compatible addresses. IPv4-mapped, 6to4 and
# Teredo forms are read by ipaddress itself.
NAT64_NETWORKS = [ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48")]
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _allowed_networks(settings: Settings) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in settings.webhook_allowlist:
        try:
            nets.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue
    return nets


def embedded_ipv4(ip: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4, Teredo's
    server), or None."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[0]
    if any(ip in net for net in NAT64_NETWORKS) or (
        ip in IPV4_COMPATIBLE and int(ip) > 1
    ):  # ::, ::1 are themselves
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def never_allowed(ip: Address) -> bool:
    """Metadata, link-local, unspecified, multicast or reserved, directly or embedded in an
    IPv6 form: never a destination."""
    inner = embedded_ipv4(ip)
    if inner is not None:  # it reaches that IPv4 address (its own prefix is "reserved")
        return never_allowed(inner)
    if ip.is_loopback:  # ::1 sits inside IPv6's reserved ::/8; loopback is only private
        return False
    return (
        any(ip in net for net in NEVER_NETWORKS)
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_unspecified
        or ip.is_reserved
    )


def _is_internal(ip: Address) -> bool:
    """Not a public address (private, loopback, shared, documentation...): refused unless
    settings allow it."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        return _is_internal(inner)
    return ip.is_private or ip.is_loopback or not ip.is_global


def parse_destination(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an acceptable URL, or WebhookRefused saying what is wrong."""
    if not isinstance(url, str) or not url:
        raise WebhookRefused("must be an http(s) URL")
    if len(url) > MAX_URL_CHARS:
        raise WebhookRefused(f"must be at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookRefused(f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused("must use http or https")
    if not parts.hostname:
        raise WebhookRefused("has no host")
    if parts.username or parts.password:
        raise WebhookRefused("must not contain credentials")
    if any(ch.isspace() for ch in url):
        raise WebhookRefused("must not contain whitespace")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def check_addresses(settings: Settings, host: str, addresses: list[Address]) -> None:
    """Refuse unless every address is allowed: never a metadata, link-local or reserved one;
    a private or loopback one only with webhook_allow_private or an allowlist entry."""
    if not addresses:
        raise WebhookRefused(f"host {host!r} does not resolve")
    allowed = _allowed_networks(settings)
    for ip in addresses:
        if never_allowed(ip):
            raise WebhookRefused(
                f"host {host!r} resolves to {ip}, a metadata, link-local, multicast or reserved "
                "address; it is never allowed, whatever the settings"
            )
        if (
            _is_internal(ip)
            and not settings.webhook_allow_private
            and not any(ip in net for net in allowed)
        ):
            raise WebhookRefused(
                f"host {host!r} resolves to {ip}, a private or reserved address; "
                "only public destinations are allowed"
            )


def resolve(host: str, port: int) -> list[Address]:
    """Every address the host resolves to (an IP literal resolves to itself, no lookup)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookRefused(f"host {host!r} does not resolve ({exc})") from None
    found: list[Address] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if ip not in found:
            found.append(ip)
    return found


@dataclass
class Destination:
    scheme: str
    host: str
    port: int
    addresses: list[Address]  # every address the host resolved to, all of them checked


def check_destination(settings: Settings, url: str) -> Destination:
    """Refuse (WebhookRefused) a URL that is malformed or reaches a non-public address."""
    scheme, host, port = parse_destination(url)
    addresses = resolve(host, port)
    check_addresses(settings, host, addresses)
    return Destination(scheme, host, port, addresses)


@dataclass
class Delivery:
    url: str
    msg_id: str
    event_type: str
    payload: dict[str, Any]


def event_body(event_type: str, payload: dict[str, Any], timestamp: datetime) -> str:
    return json.dumps(
        {"type": event_type, "timestamp": timestamp.isoformat(), "data": payload},
        separators=(",", ":"),
        sort_keys=True,
    )


def signed_headers(secret: str, msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signer(secret).sign(msg_id, timestamp, body),
        "user-agent": "Spool-Webhooks/1",
    }


def pinned_request(url: str, dest: Destination) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(URL naming the checked address, headers, httpx extensions) for a request that connects
    to ``dest.addresses[0]`` while the server still sees the name: in the Host header and, over
    HTTPS, as the TLS SNI and the name the certificate must match."""
    parts = urlsplit(url)
    ip = dest.addresses[0]
    netloc = f"[{ip}]" if ip.version == 6 else str(ip)
    target = urlunsplit((parts.scheme, f"{netloc}:{dest.port}", parts.path or "/", parts.query, ""))
    headers = {"host": parts.netloc.rsplit("@", 1)[-1]}
    extensions: dict[str, Any] = {}
    if dest.scheme == "https" and not _is_ip_literal(dest.host):
        extensions["sni_hostname"] = dest.host
    return target, headers, extensions


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def shown_url(url: str) -> str:
    """What errors and logs may say of a destination: scheme, host and port. The path and
    query often hold the subscriber's token (``https://hooks.example/services/T0/B0/secret``)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "a malformed URL"
    if not host:
        return "a URL without a host"
    netloc = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{netloc}" + (f":{port}" if port else "")


def _without_url(text: str, *urls: str) -> str:
    """An exception's text with every given URL, and each one's path and query, removed."""
    for url in urls:
        parts = urlsplit(url)
        for piece in (url, urlunsplit(("", "", parts.path, parts.query, ""))):
            if len(piece) > 1:
                text = text.replace(piece, "…")
    return text


async def _exchange(
    settings: Settings,
    target: str,
    body: bytes,
    headers: dict[str, str],
    extensions: dict[str, Any],
    verify: ssl.SSLContext | bool,
) -> int:
    """POST and take the answer's status by the delivery's deadline (TimeoutError if none):
    connect, send and the answer's headers all count, so a receiver dripping a byte at a time
    cannot hold the delivery longer, as it could each read's own timeout. Then at most
    MAX_RESPONSE_BYTES of the body, by the same deadline: the status is the answer, so a body
    still coming at the deadline is dropped, not waited for."""
    ends = asyncio.get_running_loop().time() + settings.webhook_deadline_seconds
    async with httpx.AsyncClient(
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        trust_env=False,
        verify=verify,
    ) as http:
        request = http.build_request(
            "POST", target, content=body, headers=headers, extensions=extensions
        )
        async with asyncio.timeout_at(ends):
            response = await http.send(request, stream=True)
        try:
            async with asyncio.timeout_at(ends):
                await _read_at_most(response, MAX_RESPONSE_BYTES)
        except TimeoutError:
            pass
        finally:
            await response.aclose()  # an unread rest closes the connection
        return response.status_code


async def _read_at_most(response: httpx.Response, limit: int) -> None:
    read = 0
    async for chunk in response.aiter_raw():
        read += len(chunk)
        if read >= limit:
            return


# spool_webhook_deliveries_total{outcome=delivered|failed|refused|error}: one per attempt.
@count_outcomes(WEBHOOK_DELIVERIES, {WebhookRefused: "refused", WebhookFailed: "failed"})
def send(settings: Settings, delivery: Delivery, *, verify: ssl.SSLContext | bool = True) -> int:
    """POST one signed event; raises WebhookRefused (never retry) or WebhookFailed (retry).

    The destination is checked again here, and the request goes to the very address that was
    checked (see pinned_request), so DNS cannot be switched between check and connect.
    Redirects are not followed: they could point anywhere. Blocking, up to
    ``webhook_deadline_seconds``: run it on a delivery thread (spool.notify.DeliveryPool).
    ``verify``: the CA trust for HTTPS (tests hand in their own).
    """
    secret = settings.webhook_secret_value
    if not secret:
        raise WebhookRefused("no webhook secret configured (SPOOL_WEBHOOK_SECRET)")
    dest = check_destination(settings, delivery.url)
    now = datetime.now(UTC)
    body = event_body(delivery.event_type, delivery.payload, now)
    headers = signed_headers(secret, delivery.msg_id, now, body)
    target, pin_headers, extensions = pinned_request(delivery.url, dest)
    headers.update(pin_headers)
    shown = shown_url(delivery.url)
    try:
        # A fresh event loop per delivery: the caller is a delivery thread, never a loop.
        status = asyncio.run(
            _exchange(settings, target, body.encode(), headers, extensions, verify)
        )
    except TimeoutError:
        raise WebhookFailed(
            f"{shown}: no answer within {settings.webhook_deadline_seconds:g} s"
        ) from None
    except httpx.HTTPError as exc:
        detail = _without_url(str(exc), delivery.url, target)
        raise WebhookFailed(f"{shown}: {type(exc).__name__}: {detail}") from None
    if not 200 <= status < 300:
        raise WebhookFailed(f"{shown} answered HTTP {status}")
    return status


def destinations(settings: Settings, callback_url: str | None) -> list[str]:
    """Where an event goes by webhook: the configured subscribers and the job's callback."""
    urls = list(settings.webhook_urls)
    if callback_url:
        urls.append(callback_url)
    return list(dict.fromkeys(urls))
