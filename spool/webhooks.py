"""Outbound webhooks: Standard Webhooks signatures and a guard against internal destinations.

A destination is checked twice: when a job carrying a callback URL is submitted (the API
answers 422) and again right before each delivery, because the name may resolve differently
by then. Every address the host resolves to must be public unless settings allow otherwise;
plain-HTTP deliveries connect to the checked address itself, so a second lookup cannot swap it.

The ``webhook-id`` of a delivery is derived from the notification's business key, so every
retry of one event carries the same id and receivers can deduplicate.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks import Webhook

from spool.config import Settings

MAX_URL_CHARS = 300  # the notification ledger's recipient column
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


def _allowed_networks(settings: Settings) -> list[ipaddress._BaseNetwork]:
    nets = []
    for entry in settings.webhook_allowlist:
        try:
            nets.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            continue
    return nets


def _is_internal(ip: Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
            or ip.is_reserved or ip.is_unspecified or not ip.is_global)


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
    if not addresses:
        raise WebhookRefused(f"host {host!r} does not resolve")
    if settings.webhook_allow_private:
        return
    allowed = _allowed_networks(settings)
    for ip in addresses:
        if _is_internal(ip) and not any(ip in net for net in allowed):
            raise WebhookRefused(
                f"host {host!r} resolves to {ip}, a private or reserved address; "
                "only public destinations are allowed")


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
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
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
    return json.dumps({"type": event_type, "timestamp": timestamp.isoformat(),
                       "data": payload}, separators=(",", ":"), sort_keys=True)


def signed_headers(secret: str, msg_id: str, timestamp: datetime, body: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signer(secret).sign(msg_id, timestamp, body),
        "user-agent": "Spool-Webhooks/1",
    }


def send(settings: Settings, delivery: Delivery) -> int:
    """POST one signed event; raises WebhookRefused (never retry) or WebhookFailed (retry).

    The destination is checked again here, and a plain-HTTP request goes to the very address
    that was checked (Host header kept), so DNS cannot be switched between check and connect.
    Redirects are not followed: they could point anywhere.
    """
    if not settings.webhook_secret:
        raise WebhookRefused("no webhook secret configured (SPOOL_WEBHOOK_SECRET)")
    dest = check_destination(settings, delivery.url)
    now = datetime.now(UTC)
    body = event_body(delivery.event_type, delivery.payload, now)
    headers = signed_headers(settings.webhook_secret, delivery.msg_id, now, body)
    target = delivery.url
    if dest.scheme == "http":
        parts = urlsplit(delivery.url)
        ip = dest.addresses[0]
        netloc = f"[{ip}]" if ip.version == 6 else str(ip)
        target = urlunsplit((parts.scheme, f"{netloc}:{dest.port}", parts.path or "/",
                             parts.query, ""))
        headers["host"] = parts.netloc.rsplit("@", 1)[-1]
    try:
        with httpx.Client(timeout=settings.webhook_timeout_seconds, follow_redirects=False,
                          trust_env=False) as http:
            response = http.post(target, content=body.encode(), headers=headers)
    except httpx.HTTPError as exc:
        raise WebhookFailed(f"{delivery.url}: {type(exc).__name__}: {exc}") from None
    if not 200 <= response.status_code < 300:
        raise WebhookFailed(f"{delivery.url} answered HTTP {response.status_code}")
    return response.status_code


def endpoints_for(settings: Settings, payload: dict[str, Any]) -> list[str]:
    """Where an event goes by webhook: the configured subscribers and the job's callback."""
    urls = list(settings.webhook_urls)
    callback = payload.get("callback_url") if isinstance(payload, dict) else None
    if isinstance(callback, str) and callback:
        urls.append(callback)
    return list(dict.fromkeys(urls))
