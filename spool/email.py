"""Email notifications over SMTP: a message per (event, recipient), once.

The notifier takes the recipients that are email addresses (a follower or an owner whose id
is an address) and hands every other one on. Each message has a Message-ID derived from the
ledger's key, so a retry after a crash between sending and marking is recognisably the same
message; plain text and HTML bodies with the title and a link; a signed unsubscribe link,
also as List-Unsubscribe (one click, RFC 8058). SMTP answers are classified: a 5xx refuses
the message for good (recorded on the ledger row, not retried), a 4xx or a dropped
connection raises, so the step retries. Recipients who opted out are never sent to.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import logging
import re
import smtplib
import ssl
from email import policy
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

from spool.config import Settings, reveal
from spool.notify import DeliveryRefused, Notification, Notifier

log = logging.getLogger("spool.email")

# The usual shape of an address (RFC 5321 lengths): a local part without spaces or
# brackets, a domain of dotted labels.
_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+=?^_`{|}~-]{1,64}@"
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


# Headers up to RFC 5322's 998 characters a line: the default 78 would fold the unsubscribe
# URL (no spaces to fold at) into encoded words, which mail clients do not follow.
_POLICY = policy.SMTP.clone(max_line_length=998)


class SmtpUnavailable(RuntimeError):
    """The server did not take the message now (4xx, or the connection failed): retry."""


def is_email_recipient(recipient: str) -> bool:
    """A recipient meant as an address: it has an @ (ids never do otherwise)."""
    return "@" in recipient


def is_valid_address(recipient: str) -> bool:
    return bool(_ADDRESS.match(recipient))


def message_id(key: str, settings: Settings) -> str:
    """The same Message-ID for every attempt of one (event, recipient)."""
    domain = parseaddr(settings.email_from)[1].rpartition("@")[2] or "spool.invalid"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:40]}@{domain}>"


def _signature(secret: str, recipient: str) -> str:
    return hmac.new(secret.encode(), recipient.encode(), hashlib.sha256).hexdigest()


def unsubscribe_token(secret: str, recipient: str) -> str:
    encoded = base64.urlsafe_b64encode(recipient.encode()).decode().rstrip("=")
    return f"{encoded}.{_signature(secret, recipient)}"


def recipient_of_token(secret: str, token: str) -> str | None:
    """The recipient a token was signed for, or None when it is not one Spool signed."""
    encoded, _, signature = token.partition(".")
    try:
        recipient = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not hmac.compare_digest(signature, _signature(secret, recipient)):
        return None
    return recipient


def unsubscribe_url(settings: Settings, recipient: str) -> str:
    token = unsubscribe_token(reveal(settings.email_secret) or "", recipient)
    return f"{settings.public_url.rstrip('/')}/v1/unsubscribe?token={token}"


def content(settings: Settings, event_type: str, payload: dict[str, Any]) -> tuple[str, str, str]:
    """(subject, one line of text, link) for an event."""
    base = settings.public_url.rstrip("/")
    if event_type == "post.published":
        title = str(payload.get("title", ""))
        author = payload.get("author_id", "")
        return (
            f"New post: {title}",
            f"{author} published “{title}”.",
            (f"{base}/v1/posts/{payload.get('post_id', '')}"),
        )
    video = f"{base}/#video={payload.get('video_id', '')}"
    if event_type == "video.captions_available":
        return "Captions are available for your video", "Its captions can be turned on.", video
    if event_type.startswith("video."):
        state = event_type.removeprefix("video.").replace("_", " ")
        return f"Your video is {state}", f"Your video's processing ended: {state}.", video
    return f"Spool: {event_type}", f"Event {event_type}.", base


def compose(settings: Settings, notification: Notification) -> EmailMessage:
    subject, line, link = content(settings, notification.event_type, notification.payload)
    unsubscribe = unsubscribe_url(settings, notification.recipient)
    message = EmailMessage(policy=_POLICY)
    message["From"] = settings.email_from
    message["To"] = notification.recipient
    message["Subject"] = subject
    message["Message-ID"] = message_id(notification.key, settings)
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(f"{line}\n\n{link}\n\n--\nUnsubscribe: {unsubscribe}\n")
    message.add_alternative(
        f"<p>{html.escape(line)}</p>"
        f'<p><a href="{html.escape(link)}">{html.escape(link)}</a></p>'
        f'<hr><p><a href="{html.escape(unsubscribe)}">Unsubscribe</a></p>',
        subtype="html",
    )
    return message


def _refusal(code: int, text: bytes | str) -> Exception:
    """A 5xx refuses the message for good; anything else is worth another attempt."""
    words = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    if 500 <= code < 600:
        return DeliveryRefused(f"SMTP {code} {words}")
    return SmtpUnavailable(f"SMTP {code} {words}")


def send(settings: Settings, message: EmailMessage, recipient: str) -> None:
    """One message over SMTP, STARTTLS and auth as settings say; raises DeliveryRefused
    (5xx) or SmtpUnavailable (4xx, connection lost)."""
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds
        ) as smtp:
            if settings.smtp_starttls:
                cafile = str(settings.smtp_tls_ca) if settings.smtp_tls_ca else None
                smtp.starttls(context=ssl.create_default_context(cafile=cafile))
            if settings.smtp_username:
                smtp.login(settings.smtp_username, reveal(settings.smtp_password) or "")
            smtp.send_message(message, to_addrs=[recipient])
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = exc.recipients.get(recipient, (550, b"refused"))
        raise _refusal(code, text) from None
    except smtplib.SMTPAuthenticationError as exc:
        # Wrong credentials are the server's settings, not the recipient's: retried.
        raise SmtpUnavailable(f"SMTP authentication failed ({exc.smtp_code})") from None
    except smtplib.SMTPResponseException as exc:
        raise _refusal(exc.smtp_code, exc.smtp_error) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise SmtpUnavailable(f"SMTP {settings.smtp_host}:{settings.smtp_port}: {exc}") from None


class EmailNotifier:
    """Mails recipients that are addresses; hands every other one to ``fallback``."""

    def __init__(self, settings: Settings, fallback: Notifier) -> None:
        if not reveal(settings.email_secret):
            raise ValueError("SPOOL_EMAIL_SECRET is required with the email notifier")
        self.settings = settings
        self.fallback = fallback

    def destinations(self, callback_url: str | None) -> list[str]:
        return self.fallback.destinations(callback_url)

    def deliver(self, notification: Notification) -> None:
        recipient = notification.recipient
        if not is_email_recipient(recipient):
            self.fallback.deliver(notification)
            return
        if not is_valid_address(recipient):
            raise DeliveryRefused("malformed email address")
        if self._opted_out(recipient):
            raise DeliveryRefused("the recipient opted out of email")
        send(self.settings, compose(self.settings, notification), recipient)
        log.info("email %s -> %s (%s)", notification.event_type, recipient, notification.key)

    def _opted_out(self, recipient: str) -> bool:
        from spool.db import get_engine
        from spool.db.notifications import opted_out_of_email

        return opted_out_of_email(get_engine(self.settings), recipient)
