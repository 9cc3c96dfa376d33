"""Webhook events that are not the end of a job (e.g. "captions available").

Same ledger and same delivery as every notification (spool.notify.notify_once with the
WebhookNotifier): one row per (event, destination), ``webhook-id`` derived from the row key,
so a retried activity re-sends under the same id. Register on the pipeline queue:

    from activities.webhooks import WebhookActivities
    [*WebhookActivities(settings).activities()]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import activity

from spool.config import Settings
from spool.db import get_engine
from spool.db.video import get_video
from spool.delivery_pool import DeliveryPool
from spool.email import is_email_recipient
from spool.models import PublishEventInput
from spool.notify import make_notifier, notify_once


class WebhookActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = get_engine(settings)
        self.notifier = make_notifier(settings)
        self.deliveries = DeliveryPool(settings.webhook_delivery_threads)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.publish_event]

    def _recipients(self, inp: PublishEventInput) -> list[str]:
        """The event's recipients; with email on, a video's owner whose id is an address is
        told its captions are available too (the workflow names no person)."""
        recipients = list(inp.recipients)
        video_id = inp.payload.get("video_id")
        if (
            "email" in self.settings.notifier_kinds
            and inp.event_type == "video.captions_available"
            and isinstance(video_id, str)
        ):
            video = get_video(self.engine, video_id)
            owner = video.get("owner_id") if video else None
            if isinstance(owner, str) and is_email_recipient(owner) and owner not in recipients:
                recipients.append(owner)
        return recipients

    @activity.defn(name="webhooks.publish_event")
    async def publish_event(self, inp: PublishEventInput) -> int:
        recipients = await self.deliveries.run(self._recipients, inp)
        outcome = await self.deliveries.run(
            notify_once,
            self.engine,
            self.notifier,
            event_id=inp.event_id,
            event_type=inp.event_type,
            recipients=recipients,
            payload=dict(inp.payload),
            callback_url=inp.callback_url,
        )
        return outcome.delivered
