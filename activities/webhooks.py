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
from spool.models import PublishEventInput
from spool.notify import DeliveryPool, make_notifier, notify_once


class WebhookActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = get_engine(settings)
        self.notifier = make_notifier(settings)
        self.deliveries = DeliveryPool(settings.webhook_delivery_threads)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.publish_event]

    @activity.defn(name="webhooks.publish_event")
    async def publish_event(self, inp: PublishEventInput) -> int:
        outcome = await self.deliveries.run(
            notify_once,
            self.engine,
            self.notifier,
            event_id=inp.event_id,
            event_type=inp.event_type,
            recipients=list(inp.recipients),
            payload=dict(inp.payload),
            callback_url=inp.callback_url,
        )
        return outcome.delivered
