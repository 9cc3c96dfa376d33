"""Webhooks end to end: a local receiver verifies every Standard Webhooks signature, sees one
logical event per occurrence (retries carry the same webhook-id), and internal destinations
are refused before any connection is made."""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from spool import webhooks
from spool.config import Settings
from spool.notify import Notification, make_notifier
from tests.support import media_clips
from tests.support.api import AUTH, api_client, storage_files, wait_video
from tests.support.pki import issue_cert, make_ca
from tests.support.services import service_missing
from tests.support.waiting import eventually
from tests.support.webhook_senders import SECRET, Receiver, webhook_settings
from tests.support.workers import spool_worker

pytestmark = pytest.mark.orchestration


async def test_post_published_reaches_a_failing_subscriber_on_the_third_try(client, settings):
    with Receiver(fail=2).running() as receiver:
        s = webhook_settings(settings, webhook_urls=[receiver.url])
        post = {
            "post_id": "hooked-1",
            "author_id": "hook-author",
            "title": "Signed",
            "body": "Delivered at least once, one id.",
            "followers": ["reader-1"],
        }
        async with api_client(s, client) as http, spool_worker(client, s):
            r = await http.post("/v1/posts", headers=AUTH, json=post)
            assert r.status_code == 202, r.text
            await client.get_workflow_handle(r.json()["job_id"]).result()
            # A repeat of the same version and a later edit are not new publications.
            assert (await http.post("/v1/posts", headers=AUTH, json=post)).status_code == 202
            r2 = await http.post("/v1/posts", headers=AUTH, json={**post, "version": 2})
            await client.get_workflow_handle(r2.json()["job_id"]).result()
        statuses = [status for _, _, status in receiver.requests]
        assert statuses == [500, 500, 204], statuses
        events = receiver.accepted()  # every attempt is correctly signed
        ids = {headers["webhook-id"] for headers, _, _ in receiver.requests}
        assert len(ids) == 1, ids  # three attempts, one logical event
        assert {e["type"] for e in events} == {"post.published"}
        assert events[-1]["data"]["post_id"] == "hooked-1"
        with pytest.raises(Exception):  # noqa: B017 - a wrong secret never verifies
            headers, body, _ = receiver.requests[-1]
            Webhook(webhooks.new_secret()).verify(body, headers)


async def test_video_callback_gets_one_signed_event(client, settings, tmp_path):
    if media_clips.tools_missing():
        service_missing(media_clips.tools_missing())
    clip = media_clips.make_clip(
        tmp_path / "c.mp4", width=320, height=240, seconds=1.5, speech=None
    )
    with Receiver().running() as receiver:
        s = webhook_settings(settings)
        async with api_client(s, client) as http:
            r = await http.post(
                "/v1/videos",
                headers=AUTH,
                files={"file": ("c.mp4", clip.read_bytes(), "video/mp4")},
                data={"captions": "false", "callback_url": receiver.url},
            )
            assert r.status_code == 202, r.text
            video_id = r.json()["video_id"]
            async with spool_worker(client, s):
                v = await wait_video(http, video_id)
                await client.get_workflow_handle(f"video-{video_id}").result()
        assert v["state"] == "ready", v
        await eventually(lambda: len(receiver.requests) >= 1, "a delivery", within=30)
        [event] = receiver.accepted()
        assert event["type"] == "video.ready"
        assert event["data"]["video_id"] == video_id
        assert event["data"]["job_id"] == f"video-{video_id}"


PRIVATE = [
    "http://10.0.0.1/",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest",
    "http://127.0.0.1:9/",
    "http://[::1]/",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
    "http://100.64.0.1/",
    "http://[::ffff:10.0.0.1]/",
    "http://[fe80::1]/",
    "http://240.0.0.1/",
    "http://172.16.5.4/",
]
MALFORMED = [
    "ftp://example.com/",
    "http://user:pw@93.184.216.34/",
    "not a url",
    "http://",
    "https://93.184.216.34:99999/",
    "http://93.184.216.34/" + "x" * 400,
]


@pytest.fixture
def no_connections(monkeypatch):
    """Any attempt to open an outbound HTTP client fails the test."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("an outbound connection was attempted")

    monkeypatch.setattr(webhooks.httpx, "Client", refuse)
    monkeypatch.setattr(webhooks, "_exchange", refuse)  # what every delivery calls


@pytest.mark.parametrize("url", PRIVATE + MALFORMED)
def test_internal_and_malformed_destinations_are_refused(url, no_connections):
    s = Settings(webhook_secret=SECRET, notifier="webhook")
    with pytest.raises(webhooks.WebhookRefused):
        webhooks.check_destination(s, url)
    with pytest.raises(webhooks.WebhookRefused):
        webhooks.send(s, webhooks.Delivery(url, "msg_1", "video.ready", {}))


def test_allow_flags():
    s = Settings(webhook_allowlist=["127.0.0.1/32"])
    webhooks.check_destination(s, "http://127.0.0.1:8080/")
    with pytest.raises(webhooks.WebhookRefused):
        webhooks.check_destination(s, "http://10.0.0.1/")
    webhooks.check_destination(Settings(webhook_allow_private=True), "http://10.0.0.1/")
    webhooks.check_destination(Settings(), "https://93.184.216.34/hook")


def test_a_name_that_now_resolves_inside_is_refused_at_delivery(
    monkeypatch, no_connections, tmp_path: Path, caplog
):
    answers = {"hooks.example.test": "93.184.216.34"}

    def fake_getaddrinfo(host, port, *args, **kwargs):
        return [(2, 1, 6, "", (answers[host], port))]

    monkeypatch.setattr(webhooks.socket, "getaddrinfo", fake_getaddrinfo)
    s = Settings(webhook_secret=SECRET, notifier="webhook", data_dir=tmp_path)
    url = "https://hooks.example.test/spool"
    webhooks.check_destination(s, url)  # accepted at the door
    answers["hooks.example.test"] = "10.0.0.7"  # DNS changed since
    with pytest.raises(webhooks.WebhookRefused, match="10.0.0.7"):
        webhooks.check_destination(s, url)
    # The notifier refuses without connecting (no_connections) and does not retry a refused
    # destination: deliver returns, and the reason is logged for the operator.
    with caplog.at_level(logging.WARNING, logger="spool.notify"):
        make_notifier(s).deliver(
            Notification(
                key="e:" + url, event_id="e", event_type="video.ready", recipient=url, payload={}
            )
        )
    [refusal] = [r.getMessage() for r in caplog.records if r.name == "spool.notify"]
    assert "https://hooks.example.test " in refusal and "refused" in refusal, refusal
    assert "10.0.0.7" in refusal and "/spool" not in refusal, refusal  # no path: docs/security.md
    # Nor is the event handed to the log notifier as if it were not a webhook.
    assert not s.resolved_notify_outbox.exists()


async def test_private_callback_url_is_refused_at_the_door(client, settings, no_connections):
    s = webhook_settings(settings, webhook_allowlist=[])
    async with api_client(s, client) as http:
        for url in ("http://10.0.0.1/", "http://192.168.1.1/", "http://127.0.0.1:9/"):
            r = await http.post(
                "/v1/videos",
                headers=AUTH,
                files={"file": ("a", b"x" * 10)},
                data={"callback_url": url},
            )
            assert r.status_code == 422 and r.json()["error"]["field"] == "callback_url", r.text
    assert storage_files(s) == []


def test_webhook_id_is_stable_per_event_and_destination():
    a = webhooks.webhook_id("video-done:v1:https://a.example/")
    assert a == webhooks.webhook_id("video-done:v1:https://a.example/")
    assert a != webhooks.webhook_id("video-done:v2:https://a.example/")
    assert a.startswith("msg_")


async def test_captions_available_and_job_end_each_arrive_once_signed(client, settings, tmp_path):
    if media_clips.tools_missing():
        service_missing(media_clips.tools_missing())
    clip = media_clips.make_clip(
        tmp_path / "talk.mp4", width=320, height=240, seconds=2.5, speech="Spool makes captions"
    )
    with Receiver().running() as receiver:
        s = webhook_settings(settings)
        async with api_client(s, client) as http:
            r = await http.post(
                "/v1/videos",
                headers=AUTH,
                files={"file": ("talk.mp4", clip.read_bytes(), "video/mp4")},
                data={"callback_url": receiver.url},
            )
            assert r.status_code == 202, r.text
            video_id = r.json()["video_id"]
            async with spool_worker(client, s):
                await client.get_workflow_handle(f"video-{video_id}").result()
        await eventually(lambda: len(receiver.requests) >= 2, "two deliveries", within=30)
        events = receiver.accepted()
    assert sorted(e["type"] for e in events) == ["video.captions_available", "video.ready"]
    captions = next(e for e in events if e["type"] == "video.captions_available")
    assert captions["data"]["video_id"] == video_id and captions["data"]["segments"] >= 1
    assert len({headers["webhook-id"] for headers, _, _ in receiver.requests}) == 2


# --- never allowed, whatever the settings ------------------------------------------------------

# Cloud metadata, link-local, "this network", multicast and reserved addresses, directly and in
# the IPv6 forms that reach an IPv4 address (mapped, compatible, NAT64, 6to4).
NEVER = [
    "http://169.254.169.254/latest",
    "http://169.254.170.2/v2/credentials",
    "http://100.100.100.200/latest/meta-data",
    "http://[fd00:ec2::254]/latest",
    "http://[fe80::1]/",
    "http://[::ffff:169.254.169.254]/latest",
    "http://[::ffff:a9fe:a9fe]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[::a9fe:a9fe]/",
    "http://[2002:a9fe:a9fe::1]/",
    "http://0.0.0.0:8000/",
    "http://0.1.2.3/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://240.0.0.1/",
    "http://255.255.255.255/",
    "http://192.0.0.192/",
]
# Settings that open everything else: private allowed and an allowlist of every address.
EVERYTHING_ALLOWED = {
    "webhook_allow_private": True,
    "webhook_allowlist": ["0.0.0.0/0", "::/0", "169.254.0.0/16"],
}


@pytest.mark.parametrize("url", NEVER)
def test_metadata_and_link_local_are_never_allowed(url, no_connections):
    s = Settings(webhook_secret=SECRET, notifier="webhook", **EVERYTHING_ALLOWED)
    with pytest.raises(webhooks.WebhookRefused, match="never allowed"):
        webhooks.check_destination(s, url)
    with pytest.raises(webhooks.WebhookRefused, match="never allowed"):
        webhooks.send(s, webhooks.Delivery(url, "msg_1", "video.ready", {}))


def test_allowing_private_opens_loopback_and_private_but_not_metadata():
    s = Settings(webhook_allow_private=True)
    for url in (
        "http://127.0.0.1:9000/hook",
        "http://[::1]:9000/",
        "http://10.1.2.3/",
        "http://[fd12:3456::1]/",
        "http://[::ffff:127.0.0.1]:9000/",
    ):
        webhooks.check_destination(s, url)
    with pytest.raises(webhooks.WebhookRefused, match="never allowed"):
        webhooks.check_destination(s, "http://169.254.169.254/latest")
    # Public addresses in every form stay allowed by default.
    for url in (
        "https://93.184.216.34/hook",
        "https://[::ffff:93.184.216.34]/",
        "https://[64:ff9b::5db8:d822]/",
    ):
        webhooks.check_destination(Settings(), url)


def test_a_name_resolving_to_metadata_is_never_allowed(monkeypatch, no_connections):
    # One address of several is enough to refuse: the client may pick any of them.
    monkeypatch.setattr(
        webhooks.socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [
            (2, 1, 6, "", ("93.184.216.34", port)),
            (2, 1, 6, "", ("169.254.169.254", port)),
        ],
    )
    s = Settings(webhook_secret=SECRET, notifier="webhook", **EVERYTHING_ALLOWED)
    with pytest.raises(webhooks.WebhookRefused, match="169.254.169.254"):
        webhooks.send(
            s, webhooks.Delivery("https://metadata.example.test/", "msg_1", "video.ready", {})
        )


async def test_metadata_callback_is_refused_at_the_door_even_on_the_embedded_stack(
    client, settings, no_connections
):
    # make up's settings (private allowed), and an allowlist that names the range outright.
    s = webhook_settings(settings, **EVERYTHING_ALLOWED)
    async with api_client(s, client) as http:
        for url in (
            "http://169.254.169.254/latest",
            "http://[::ffff:169.254.169.254]/",
            "http://[fd00:ec2::254]/latest",
            "http://100.100.100.200/",
        ):
            r = await http.post(
                "/v1/videos",
                headers=AUTH,
                files={"file": ("a", b"x" * 10)},
                data={"callback_url": url},
            )
            assert r.status_code == 422, r.text
            error = r.json()["error"]
            assert error["field"] == "callback_url" and "never allowed" in error["message"]
    assert storage_files(s) == []


# --- HTTPS deliveries are pinned to the checked address -------------------------------------

HOOK_NAME = "hooks.test"


def _tls_material(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """(certificate chain, key, CA PEM): a throwaway CA and a certificate for HOOK_NAME only."""
    ca, ca_cert, ca_key = make_ca(tmp_path, "spool-test-ca")
    leaf = issue_cert(tmp_path, "hooks", ca_cert, ca_key, server=True, names=[HOOK_NAME])
    return leaf.cert, leaf.key, ca.cert.read_bytes()


class TlsReceiver(Receiver):
    """A Receiver behind TLS with HOOK_NAME's certificate; it notes the SNI name of every
    handshake."""

    def __init__(self, host: str, port: int, chain: Path, key: Path) -> None:
        import ssl

        super().__init__(host=host, port=port)
        self.sni: list[str | None] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain, key)
        context.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)


@pytest.fixture
def tls_receivers(tmp_path):
    """The receiver the name resolves to at the check (127.0.0.1) and, on the same port with
    the same valid certificate, the one a second lookup would reach instead (127.0.0.2)."""
    import ssl

    chain, key, ca_pem = _tls_material(tmp_path)
    checked = TlsReceiver("127.0.0.1", 0, chain, key)
    other = TlsReceiver("127.0.0.2", checked.port, chain, key)
    trust = ssl.create_default_context(cadata=ca_pem.decode())
    with checked.running(), other.running():
        yield checked, other, trust


def test_https_delivery_goes_to_the_checked_address_with_the_name_for_tls(
    monkeypatch, tls_receivers
):
    checked, other, trust = tls_receivers
    lookups: list[str] = []  # names looked up (an IP literal "resolves" to itself)

    def fake_getaddrinfo(host, port, *args, **kwargs):
        if host[0].isdigit():
            return [(2, 1, 6, "", (host, port))]
        lookups.append(host)
        # The first answer is checked; any later one points at the other receiver.
        address = "127.0.0.1" if len(lookups) == 1 else "127.0.0.2"
        return [(2, 1, 6, "", (address, port))]

    monkeypatch.setattr(webhooks.socket, "getaddrinfo", fake_getaddrinfo)
    s = Settings(webhook_secret=SECRET, notifier="webhook", webhook_allowlist=["127.0.0.1/32"])
    url = f"https://{HOOK_NAME}:{checked.port}/hooks/spool"
    status = webhooks.send(
        s, webhooks.Delivery(url, "msg_pinned", "video.ready", {"a": 1}), verify=trust
    )
    assert status == 204
    assert lookups == [HOOK_NAME]  # resolved once, for the check
    assert len(checked.requests) == 1 and other.requests == [] and other.sni == []
    assert checked.sni == [HOOK_NAME]  # SNI, and the certificate was verified for the name
    headers, _body, _ = checked.requests[0]
    assert headers["host"] == f"{HOOK_NAME}:{checked.port}"
    [event] = checked.accepted()
    assert event["data"] == {"a": 1}


def test_https_delivery_to_a_name_now_resolving_inside_never_connects(monkeypatch, tls_receivers):
    checked, other, trust = tls_receivers
    monkeypatch.setattr(
        webhooks.socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [(2, 1, 6, "", ("10.0.0.7", port))],
    )
    s = Settings(webhook_secret=SECRET, notifier="webhook", webhook_allowlist=["127.0.0.1/32"])
    url = f"https://{HOOK_NAME}:{checked.port}/hooks/spool"
    with pytest.raises(webhooks.WebhookRefused, match="10.0.0.7"):
        webhooks.send(s, webhooks.Delivery(url, "msg_1", "video.ready", {}), verify=trust)
    assert checked.sni == [] and other.sni == [] and checked.requests == other.requests == []


# --- plain HTTP deliveries are pinned too ------------------------------------------------------


def _switching_dns(monkeypatch, family: int, first: str, later: str) -> list[str]:
    """getaddrinfo whose first answer for a name is ``first`` and every later one ``later``;
    returns the list of names looked up (an IP literal is answered as itself, not noted)."""
    lookups: list[str] = []

    def fake_getaddrinfo(host, port, *args, **kwargs):
        try:
            ipaddress.ip_address(host)
            return [(family, 1, 6, "", (host, port))]
        except ValueError:
            lookups.append(host)
        return [(family, 1, 6, "", (first if len(lookups) == 1 else later, port))]

    monkeypatch.setattr(webhooks.socket, "getaddrinfo", fake_getaddrinfo)
    return lookups


@pytest.mark.parametrize(
    "netloc_prefix, path_and_query, seen_path",
    [
        ("", "/hooks/spool?run=7", "/hooks/spool?run=7"),
        ("", "", "/"),  # no path: the request still asks for "/"
        ("", "?run=7", "/?run=7"),
        ("@", "/hooks", "/hooks"),  # an empty user-info is not part of the Host
    ],
)
def test_http_delivery_to_a_name_goes_to_the_checked_address_with_the_name_as_host(
    monkeypatch, netloc_prefix, path_and_query, seen_path
):
    checked = Receiver()
    other = Receiver(host="127.0.0.2", port=checked.port)
    lookups = _switching_dns(monkeypatch, socket.AF_INET, "127.0.0.1", "127.0.0.2")
    s = Settings(webhook_secret=SECRET, notifier="webhook", webhook_allowlist=["127.0.0.1/32"])
    url = f"http://{netloc_prefix}{HOOK_NAME}:{checked.port}{path_and_query}"
    with checked.running(), other.running():
        status = webhooks.send(s, webhooks.Delivery(url, "msg_http", "video.ready", {"b": 2}))
    assert status == 204
    assert lookups == [HOOK_NAME]  # resolved once, for the check; the request used the answer
    assert checked.paths == [seen_path] and other.requests == []
    headers, _body, _ = checked.requests[0]
    assert headers["host"] == f"{HOOK_NAME}:{checked.port}"
    [event] = checked.accepted()
    assert event["data"] == {"b": 2}


def test_ipv6_deliveries_reach_the_checked_address(monkeypatch):
    """An IPv6 literal and a name that resolves to IPv6 both reach the receiver on ::1, with
    the Host header the URL names."""
    try:
        receiver = Receiver(host="::1")
    except OSError as exc:  # a host or container without IPv6 loopback
        service_missing(f"IPv6 loopback ::1: {exc}")
    lookups = _switching_dns(monkeypatch, socket.AF_INET6, "::1", "::2")
    s = Settings(webhook_secret=SECRET, notifier="webhook", webhook_allowlist=["::1/128"])
    with receiver.running():
        assert webhooks.send(s, webhooks.Delivery(receiver.url, "msg_v6", "video.ready", {})) == 204
        assert (
            webhooks.send(
                s,
                webhooks.Delivery(
                    f"http://{HOOK_NAME}:{receiver.port}/by-name", "msg_v6n", "video.ready", {}
                ),
            )
            == 204
        )
    assert lookups == [HOOK_NAME]
    assert receiver.paths == ["/hooks/spool", "/by-name"]
    hosts = [headers["host"] for headers, _, _ in receiver.requests]
    assert hosts == [f"[::1]:{receiver.port}", f"{HOOK_NAME}:{receiver.port}"]


PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"


@pytest.mark.parametrize(
    "url, address, target, host, sni",
    [
        (
            "https://hooks.test/x?q=1",
            "93.184.216.34",
            "https://93.184.216.34:443/x?q=1",
            "hooks.test",
            "hooks.test",
        ),
        (
            "https://hooks.test:8443",
            PUBLIC_V6,
            f"https://[{PUBLIC_V6}]:8443/",
            "hooks.test:8443",
            "hooks.test",
        ),
        # An address in the URL is no name: no SNI override (RFC 6066 has no IP form).
        (
            "https://93.184.216.34:8443/x",
            "93.184.216.34",
            "https://93.184.216.34:8443/x",
            "93.184.216.34:8443",
            None,
        ),
        (
            f"https://[{PUBLIC_V6}]/x",
            PUBLIC_V6,
            f"https://[{PUBLIC_V6}]:443/x",
            f"[{PUBLIC_V6}]",
            None,
        ),
        ("http://hooks.test/x", "93.184.216.34", "http://93.184.216.34:80/x", "hooks.test", None),
    ],
)
def test_pinned_request_names_the_checked_address_and_keeps_the_name(
    url, address, target, host, sni
):
    """What send() hands to httpx: the URL of the checked address, the URL's own Host, and
    the name for TLS only when it is one."""
    dest = webhooks.Destination(*webhooks.parse_destination(url), [ipaddress.ip_address(address)])
    got_target, headers, extensions = webhooks.pinned_request(url, dest)
    assert got_target == target
    assert headers == {"host": host}
    assert extensions == ({"sni_hostname": sni} if sni else {})


# --- every refusal names its reason ------------------------------------------------------------

# The API answers a refused callback_url with "callback_url: <message>": the message is what
# the submitter reads to fix the URL, so each names the problem (rule 3).
REFUSAL_MESSAGES = [
    ("", r"must be an http\(s\) URL"),
    ("ftp://example.com/", r"must use http or https"),
    ("http://", r"has no host"),
    ("http://user:pw@93.184.216.34/", r"must not contain credentials"),
    ("http://user@93.184.216.34/", r"must not contain credentials"),
    ("http://:pw@93.184.216.34/", r"must not contain credentials"),
    ("http://93.184.216.34/a b", r"must not contain whitespace"),
    ("https://93.184.216.34:99999/", r"is not a valid URL \(.*[Pp]ort.*\)"),
    ("http://93.184.216.34/" + "x" * 400, r"must be at most 300 characters"),
    (
        "http://10.0.0.1/",
        r"host '10\.0\.0\.1' resolves to 10\.0\.0\.1, a private or reserved "
        r"address; only public destinations are allowed",
    ),
    (
        "http://169.254.169.254/",
        r"host '169\.254\.169\.254' resolves to 169\.254\.169\.254, a "
        r"metadata, link-local, multicast or reserved address; it is "
        r"never allowed, whatever the settings",
    ),
]


@pytest.mark.parametrize("url, message", REFUSAL_MESSAGES)
def test_each_refusal_names_the_problem(url, message, no_connections):
    with pytest.raises(webhooks.WebhookRefused) as err:
        webhooks.check_destination(Settings(), url)
    assert re.fullmatch(message, str(err.value)), str(err.value)


def test_a_name_with_no_address_is_refused_naming_it(monkeypatch, no_connections):
    monkeypatch.setattr(webhooks.socket, "getaddrinfo", lambda *a, **k: [])
    with pytest.raises(webhooks.WebhookRefused) as err:
        webhooks.check_destination(Settings(), "https://nothing.example.test/")
    assert str(err.value) == "host 'nothing.example.test' does not resolve"


def test_the_longest_accepted_url_fits_the_ledger():
    """A URL of exactly MAX_URL_CHARS (the ledger's recipient column) is accepted."""
    base = "https://93.184.216.34/"
    url = base + "x" * (webhooks.MAX_URL_CHARS - len(base))
    assert len(url) == webhooks.MAX_URL_CHARS
    assert webhooks.parse_destination(url) == ("https", "93.184.216.34", 443)
    assert webhooks.parse_destination("http://93.184.216.34/") == ("http", "93.184.216.34", 80)


def test_allowlist_entries_are_networks_and_a_bad_one_does_not_hide_the_rest():
    # An operator's "10.1.2.3/16" means the network 10.1.0.0/16 (host bits are not an error),
    # and an entry that is no network at all is skipped, not the end of the list.
    s = Settings(webhook_allowlist=["not-a-network", "10.1.2.3/16", " 127.0.0.1/32 "])
    for url in ("http://10.1.200.7/", "http://127.0.0.1:9000/"):
        webhooks.check_destination(s, url)
    with pytest.raises(webhooks.WebhookRefused, match="only public"):
        webhooks.check_destination(s, "http://10.2.0.1/")


# IPv6 forms that reach a private IPv4 address but are not private themselves to ipaddress:
# NAT64 (64:ff9b::/96) and 6to4 (2002::/16) of 10.0.0.1.
EMBEDDED_PRIVATE = ["http://[64:ff9b::a00:1]/", "http://[2002:a00:1::1]/"]


@pytest.mark.parametrize("url", EMBEDDED_PRIVATE)
def test_private_addresses_inside_ipv6_forms_are_refused(url, no_connections):
    with pytest.raises(webhooks.WebhookRefused, match="only public"):
        webhooks.check_destination(Settings(), url)
    webhooks.check_destination(Settings(webhook_allow_private=True), url)


def test_a_teredo_address_is_judged_by_the_server_it_reaches(no_connections):
    # Teredo 2001:0:<server>:<flags>:<port>:<client>, the client's bits inverted: a packet to it
    # goes to the server, so a metadata server with a public client is never allowed.
    server, client = "169.254.169.254", "93.184.216.34"
    obfuscated = int(ipaddress.IPv4Address(client)) ^ 0xFFFFFFFF
    teredo = ipaddress.IPv6Address(
        (0x20010000 << 96) | (int(ipaddress.IPv4Address(server)) << 64) | obfuscated
    )
    assert teredo.teredo == (ipaddress.IPv4Address(server), ipaddress.IPv4Address(client))
    with pytest.raises(webhooks.WebhookRefused, match="never allowed"):
        webhooks.check_destination(Settings(**EVERYTHING_ALLOWED), f"http://[{teredo}]/")
