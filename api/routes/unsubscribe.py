"""Email opt-out through the signed link every notification email carries: no API key,
the signature is the proof (docs/notifications.md)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Query

from api.deps import Services, services
from api.errors import ApiError, error_responses
from spool.config import reveal
from spool.db.notifications import opt_out_of_email
from spool.email import recipient_of_token
from spool.service.views import View

router = APIRouter(prefix="/v1", tags=["notifications"])
TOKEN = Query(
    ...,
    min_length=3,
    max_length=1000,
    pattern=r"^[A-Za-z0-9_-]+\.[0-9a-f]{64}$",
    description="the token of an email's unsubscribe link",
)


class Unsubscribed(View):
    recipient: str
    unsubscribed: bool = True


async def _unsubscribe(token: str, svc: Services) -> Unsubscribed:
    secret = reveal(svc.settings.email_secret)
    recipient = recipient_of_token(secret, token) if secret else None
    if recipient is None:
        raise ApiError(404, "not an unsubscribe link this server signed", field="token")
    await asyncio.to_thread(opt_out_of_email, svc.engine, recipient)
    return Unsubscribed(recipient=recipient)


@router.get(
    "/unsubscribe",
    response_model=Unsubscribed,
    responses=error_responses(404, 422, e404="the token is not one this server signed"),
)
async def unsubscribe(token: str = TOKEN, svc: Services = Depends(services)) -> Unsubscribed:
    """Stop emails to the link's recipient (every later notification to them is recorded
    as refused, not sent). Repeating it is harmless."""
    return await _unsubscribe(token, svc)


@router.post(
    "/unsubscribe",
    response_model=Unsubscribed,
    responses=error_responses(404, 422, e404="the token is not one this server signed"),
)
async def unsubscribe_one_click(
    token: str = TOKEN, svc: Services = Depends(services)
) -> Unsubscribed:
    """The same, as mail clients send it from the List-Unsubscribe header (RFC 8058)."""
    return await _unsubscribe(token, svc)
