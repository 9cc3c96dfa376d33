"""A video handed over as a URL (``source_url``): checked at the door by the webhooks' guard,
then fetched by the job's first step (spool/fetch.py)."""

from __future__ import annotations

import asyncio

from api.errors import ApiError
from api.uploads import FILE_FIELD, Upload
from spool import webhooks
from spool.config import Settings

SOURCE_FIELD = "source_url"

SOURCE_URL_SCHEMA = {
    "type": "string",
    "format": "uri",
    "description": "instead of a file: an http(s) URL the job fetches the video from (with "
    "ranges, resuming); it must resolve to a public address unless the server allows private "
    "ones",
}


async def checked_source_url(settings: Settings, upload: Upload) -> str | None:
    """The form's source_url once the guard accepts it, or None for a file upload; 422 for
    both a file and a URL, or neither."""
    url = upload.get(SOURCE_FIELD)
    has_file = upload.pending is not None
    if has_file and url is not None:
        raise ApiError(
            422,
            f"send either a '{FILE_FIELD}' part or a '{SOURCE_FIELD}', not both",
            field=SOURCE_FIELD,
        )
    if not has_file and url is None:
        raise ApiError(
            422,
            f"{FILE_FIELD}: is required (a multipart part named '{FILE_FIELD}'), "
            f"or a '{SOURCE_FIELD}' field",
            field=FILE_FIELD,
        )
    if url is None:
        return None
    try:
        await asyncio.to_thread(_refuse_at_the_door, settings, url)
    except webhooks.WebhookRefused as exc:
        raise ApiError(422, f"{SOURCE_FIELD}: {exc}", field=SOURCE_FIELD) from None
    return url


def _refuse_at_the_door(settings: Settings, url: str) -> None:
    """The webhooks' guard (spool/webhooks.py check_destination), but a name that does not
    resolve from the API host now is left to the job: the fetch checks the URL again on the
    worker, and its error then says the name does not resolve."""
    _, host, port = webhooks.parse_destination(url)
    try:
        addresses = webhooks.resolve(host, port)
    except webhooks.WebhookRefused:
        return
    webhooks.check_addresses(settings, host, addresses)
