"""Notifiers that stand in for a receiver."""

from __future__ import annotations

from spool.notify import Notification


class Recorder:
    """A notifier that keeps what it delivers; ``fail_on``: the one recipient whose first
    delivery fails, as a receiver that is down would."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.sent: list[Notification] = []
        self.fail_on = fail_on

    def destinations(self, callback_url: str | None) -> list[str]:
        return []

    def deliver(self, notification: Notification) -> None:
        if notification.recipient == self.fail_on:
            self.fail_on = None
            raise ConnectionError("receiver down")
        self.sent.append(notification)
