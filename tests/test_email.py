"""Email through a real SMTP server (Mailpit, STARTTLS and a login), read back through its
HTTP API: each message once, its headers and bodies right, an outage mid-fan-out losing
nothing, refusals recorded and not retried, and an opted-out recipient never mailed."""

from __future__ import annotations

import socket
import threading
import uuid

import pytest
import sqlalchemy as sa

from spool import fanout
from spool.config import Settings
from spool.db import get_engine
from spool.db.followers import import_follows
from spool.db.notifications import delivery_key, notifications, opt_out_of_email
from spool.email import (
    SmtpUnavailable,
    compose,
    message_id,
    recipient_of_token,
    send,
    unsubscribe_token,
)
from spool.fanout import Cursor, Event, FanOutHooks
from spool.notify import DeliveryRefused, Notification, make_notifier, notify_once
from tests.support.api import api_client, api_settings, assert_error

pytestmark = pytest.mark.e2e


@pytest.fixture
def db(settings):
    """The test's own database, the one its notifiers read opt-outs from."""
    return get_engine(settings)


def post_event(post_id: str) -> Event:
    return Event(
        event_id=f"post-published:{post_id}",
        event_type="post.published",
        payload={"post_id": post_id, "author_id": "ada", "title": "Durable <pipelines>"},
    )


def audience(db, count: int) -> tuple[str, list[str]]:
    author = f"ada-{uuid.uuid4().hex[:6]}"
    people = [f"f{i:03d}-{author}@example.com" for i in range(count)]
    import_follows(db, ((author, p) for p in people))
    return author, people


def arrived(mailpit, people: list[str]) -> list[dict]:
    wanted = set(people)
    return [m for m in mailpit.server.messages() if m["To"][0]["Address"] in wanted]


def rows(db, event: Event) -> dict[str, tuple]:
    with db.connect() as conn:
        return {
            r.recipient: (r.delivered_at is not None, r.failed_at is not None, r.error)
            for r in conn.execute(
                sa.select(notifications).where(notifications.c.event_id == event.event_id)
            )
        }


def test_each_follower_gets_one_email_with_the_post_and_a_signed_unsubscribe(mailpit, settings, db):
    s = mailpit.settings(settings)
    author, people = audience(db, 5)
    event = post_event(f"p-{author}")
    fanout.fan_out_to_followers(db, make_notifier(s), event, author, FanOutHooks(), page_size=2)
    got = arrived(mailpit, people)
    assert sorted(m["To"][0]["Address"] for m in got) == people  # each once
    first = mailpit.server.api(f"/api/v1/message/{got[0]['ID']}")
    recipient = first["To"][0]["Address"]
    assert first["Subject"] == "New post: Durable <pipelines>"
    assert f"<{first['MessageID']}>" == message_id(delivery_key(event.event_id, recipient), s)
    link = f"https://spool.example.org/v1/posts/{event.payload['post_id']}"
    assert link in first["Text"] and link in first["HTML"]
    assert "Durable &lt;pipelines&gt;" in first["HTML"]  # escaped, never markup
    headers = mailpit.server.api(f"/api/v1/message/{got[0]['ID']}/headers")
    unsubscribe = headers["List-Unsubscribe"][0].strip("<>")
    assert headers["List-Unsubscribe-Post"] == ["List-Unsubscribe=One-Click"]
    token = unsubscribe.split("token=", 1)[1]
    assert recipient_of_token("test-email-secret", token) == recipient
    assert unsubscribe in first["Text"]


def test_an_smtp_outage_mid_fan_out_loses_nothing_and_sends_nothing_twice(mailpit, settings, db):
    s = mailpit.settings(settings)
    author, people = audience(db, 20)
    event = post_event(f"p-{author}")
    email = make_notifier(s)
    beats: list[dict] = []

    class GoesDown:
        """The SMTP server stops after the eighth message: the ninth cannot connect."""

        def __init__(self) -> None:
            self.count = 0

        def destinations(self, callback_url):
            return []

        def deliver(self, notification: Notification) -> None:
            if self.count == 8:
                mailpit.server.stop()
            email.deliver(notification)
            self.count += 1

    with pytest.raises(SmtpUnavailable):
        fanout.fan_out_to_followers(
            db, GoesDown(), event, author, FanOutHooks(beat=beats.append), page_size=5
        )
    mailpit.server.start()
    assert Cursor.from_details(beats[-1:]).after == people[4]  # the first page is done
    fanout.fan_out_to_followers(
        db, email, event, author, FanOutHooks(resumed_from=beats[-1:]), page_size=5
    )
    assert sorted(m["To"][0]["Address"] for m in arrived(mailpit, people)) == people
    assert all(state[0] for state in rows(db, event).values())


def test_refusals_are_recorded_and_never_retried(mailpit, settings, db):
    s = mailpit.settings(settings)
    author, people = audience(db, 2)
    refused, malformed = f"someone-{author}@refused.test", f"bad@@{author}"
    import_follows(db, [(author, refused), (author, malformed)])
    event = post_event(f"p-{author}")
    fanout.fan_out_to_followers(db, make_notifier(s), event, author, FanOutHooks())
    state = rows(db, event)
    assert state[refused][:2] == (False, True) and state[refused][2].startswith("SMTP 5")
    assert state[malformed] == (False, True, "malformed email address")
    assert all(state[p][:2] == (True, False) for p in people)
    again = make_notifier(s)
    fanout.fan_out_to_followers(db, again, event, author, FanOutHooks())  # a retry
    assert sorted(m["To"][0]["Address"] for m in arrived(mailpit, people)) == people


async def test_the_unsubscribe_link_works_without_a_key_and_the_fan_out_respects_it(
    mailpit, settings, client
):
    s = api_settings(mailpit.settings(settings), public_reads=False)
    engine = get_engine(s)
    author, people = audience(engine, 3)
    token = unsubscribe_token("test-email-secret", people[1])
    async with api_client(s, client) as http:
        answer = await http.get("/v1/unsubscribe", params={"token": token})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"recipient": people[1], "unsubscribed": True}
        forged = unsubscribe_token("another-secret", people[2])
        assert_error(await http.get("/v1/unsubscribe", params={"token": forged}), 404, "token")
        assert (await http.post("/v1/unsubscribe", params={"token": token})).status_code == 200
    event = post_event(f"p-{author}")
    fanout.fan_out_to_followers(engine, make_notifier(s), event, author, FanOutHooks())
    assert sorted(m["To"][0]["Address"] for m in arrived(mailpit, people)) == [
        people[0],
        people[2],
    ]
    assert rows(engine, event)[people[1]] == (False, True, "the recipient opted out of email")


def test_a_video_owner_is_told_by_email_and_the_webhooks_still_go(mailpit, settings, db):
    s = mailpit.settings(settings, notifier="webhook,email")
    owner = f"owner-{uuid.uuid4().hex[:6]}@example.com"
    for event_type, subject in (
        ("video.ready", "Your video is ready"),
        ("video.captions_available", "Captions are available for your video"),
    ):
        notify_once(
            db,
            make_notifier(s),
            event_id=f"{event_type}:{owner}",
            event_type=event_type,
            recipients=[owner],
            payload={"video_id": "v1"},
        )
        got = arrived(mailpit, [owner])
        assert got[-1]["Subject"] == subject
    assert len(arrived(mailpit, [owner])) == 2
    opt_out_of_email(db, owner)
    with pytest.raises(DeliveryRefused):
        make_notifier(s).deliver(Notification("k", "e", "video.ready", owner, {"video_id": "v1"}))


@pytest.mark.unit
def test_an_unsubscribe_token_is_bound_to_its_recipient_and_secret():
    token = unsubscribe_token("s3cret", "grace@example.com")
    assert recipient_of_token("s3cret", token) == "grace@example.com"
    assert recipient_of_token("other", token) is None
    encoded, _, signature = token.partition(".")
    assert recipient_of_token("s3cret", f"{encoded}x.{signature}") is None
    assert recipient_of_token("s3cret", "garbage") is None


@pytest.mark.unit
def test_a_server_that_accepts_then_drops_the_connection_is_retried():
    """An SMTP server that greets, then hangs up: a temporary failure (the step retries),
    never a refusal recorded for good."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def greet_and_drop() -> None:
        conn, _ = listener.accept()
        conn.sendall(b"220 mail.example.com ESMTP\r\n")
        conn.recv(1024)  # the EHLO
        conn.close()

    thread = threading.Thread(target=greet_and_drop, daemon=True)
    thread.start()
    s = Settings(smtp_port=port, smtp_starttls=False, email_secret="x")
    message = compose(s, Notification("k", "e", "post.published", "a@example.com", {}))
    with pytest.raises(SmtpUnavailable):
        send(s, message, "a@example.com")
    thread.join(10)
    listener.close()


@pytest.mark.unit
def test_with_email_on_a_videos_owner_is_told_its_captions_are_available(tmp_path):
    """The workflow names no person for "captions available": with email on, the activity
    adds the video's owner when the owner's id is an address, and nobody otherwise."""
    from activities.webhooks import WebhookActivities
    from spool.db.video import ensure_video
    from spool.models import PublishEventInput

    base = Settings(data_dir=tmp_path / "data", email_secret="x")
    ensure_video(get_engine(base), "v1", "owner@example.com", "processing")
    ensure_video(get_engine(base), "v2", "owner-7", "processing")

    def recipients(notifier: str, video_id: str) -> list[str]:
        acts = WebhookActivities(base.model_copy(update={"notifier": notifier}))
        event = PublishEventInput(
            event_id=f"captions-available:{video_id}",
            event_type="video.captions_available",
            payload={"video_id": video_id},
        )
        return acts._recipients(event)

    assert recipients("webhook,email", "v1") == ["owner@example.com"]
    assert recipients("webhook", "v1") == []  # as before: webhooks only
    assert recipients("email", "v2") == []  # an owner id that is no address


@pytest.mark.unit
def test_a_permanent_refusal_is_recorded_and_a_temporary_one_retried():
    from spool.email import _refusal

    assert isinstance(_refusal(550, b"mailbox unavailable"), DeliveryRefused)
    assert isinstance(_refusal(554, "rejected"), DeliveryRefused)
    assert isinstance(_refusal(451, b"try again later"), SmtpUnavailable)
    assert isinstance(_refusal(421, b"closing"), SmtpUnavailable)
