"""The upload's form: its fields' patterns, the OpenAPI schema that states them, and the
parsers that read them the same way (docs/ARCHITECTURE.md, API)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from api.errors import ApiError
from api.sources import SOURCE_FIELD, SOURCE_URL_SCHEMA
from api.uploads import FILE_FIELD
from spool.models.video import RENDITION_HEIGHTS, normalize_renditions

# A retention time further ahead than this starts no timer: the video is kept until deleted.
MAX_DELETE_AFTER = timedelta(days=10 * 366)

# The form's fields, as the parsers below read them; the OpenAPI schema states the same
# patterns, so a request the schema calls valid is accepted (docs/ARCHITECTURE.md, API).
_TRUE = ("1", "true", "on", "yes")
_FALSE = ("0", "false", "off", "no")
_RUNG = "(?:" + "|".join(str(h) for h in RENDITION_HEIGHTS) + ")[pP]?"
# Here and in BOOL_PATTERN each blank matches one way only: with two `[ \t]*` side by side
# around an optional word, a refused value made the match backtrack for minutes, in the
# event loop.
RENDITIONS_PATTERN = rf"^[ \t]*(?:{_RUNG}[ \t]*)?(?:,[ \t]*(?:{_RUNG}[ \t]*)?)*$"
OWNER_PATTERN = r"^[A-Za-z0-9_.@:-]{0,100}$"


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


BOOL_PATTERN = "^[ \\t]*(?:(?:" + "|".join(_any_case(w) for w in _TRUE + _FALSE) + ")[ \\t]*)?$"


def upload_form_schema(webhooks_enabled: bool) -> dict[str, Any]:
    """The multipart form of an upload; ``callback_url`` only where webhooks are on."""
    file = {
        "type": "string",
        "format": "binary",
        "minLength": 1,
        "description": "the video; at most settings.max_upload_bytes",
    }
    properties = {
        "captions": {
            "type": "string",
            "pattern": BOOL_PATTERN,
            "example": "true",
            "description": "make captions: true or false (also 1/0, on/off, yes/no); default true",
        },
        "renditions": {
            "type": "string",
            "pattern": RENDITIONS_PATTERN,
            "example": "720p,360p",
            "description": "comma-separated rungs of the ladder "
            f"({', '.join(f'{h}p' for h in RENDITION_HEIGHTS)}); "
            "default: every rung up to the source's height",
        },
        "owner_id": {
            "type": "string",
            "pattern": OWNER_PATTERN,
            "description": "who is notified (default `api`)",
        },
        "delete_after": {
            "type": "string",
            "format": "date-time",
            "description": "when the video is deleted, ISO 8601 with a zone (e.g. "
            "`2027-01-31T09:00:00Z`; a time past: at once; over ten years ahead: never); "
            "default: the server's retention (SPOOL_VIDEO_RETENTION_DAYS), else never",
        },
    }
    if webhooks_enabled:
        properties["callback_url"] = {
            "type": "string",
            "format": "uri",
            "description": "receives signed webhooks; must resolve to a public address "
            "unless the server allows private ones",
        }
    # Exactly one of file and source_url (both, or neither, is a 422 saying so): each branch
    # requires its own and refuses the other (a `false` schema).
    return {
        "oneOf": [
            {
                "type": "object",
                "required": [name],
                "properties": {name: schema, other: False, **properties},
            }
            for name, schema, other in (
                (FILE_FIELD, file, SOURCE_FIELD),
                (SOURCE_FIELD, SOURCE_URL_SCHEMA, FILE_FIELD),
            )
        ]
    }


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": upload_form_schema(webhooks_enabled=True)}},
    }
}


def bool_field(value: str | None, name: str, default: bool) -> bool:
    v = (value or "").strip(" \t").lower()
    if v == "":
        return default
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ApiError(422, f"{name}: must be true or false", field=name)


def renditions_field(values: list[str] | None) -> list[str] | None:
    for value in values or []:
        if not re.fullmatch(RENDITIONS_PATTERN, value):
            ladder = ", ".join(f"{h}p" for h in RENDITION_HEIGHTS)
            raise ApiError(
                422,
                f"renditions: {value!r} is not a comma-separated list of {ladder}",
                field="renditions",
            )
    names = [part for value in values or [] for part in value.split(",")]
    try:
        return normalize_renditions(names)
    except ValueError as exc:
        raise ApiError(422, str(exc), field="renditions") from None


def owner_field(value: str | None) -> str:
    if not re.fullmatch(OWNER_PATTERN, value or ""):
        raise ApiError(
            422, "owner_id: letters, digits and _.@:- only, at most 100", field="owner_id"
        )
    return value or "api"


def delete_after_field(value: str | None, now: datetime) -> datetime | None:
    """The retention time asked for: an ISO 8601 time with a zone. A time already past is now
    (the video is deleted as soon as it is stored); one more than ten years ahead is no
    retention at all (None: kept until deleted), not worth a timer."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.strip().upper().replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ApiError(
            422,
            "delete_after: an ISO 8601 time with a zone, e.g. 2027-01-31T09:00:00Z",
            field="delete_after",
        )
    ahead = when - now  # a timedelta: no overflow, whatever the year and zone
    if ahead > MAX_DELETE_AFTER:
        return None
    return now if ahead <= timedelta(0) else when.astimezone(UTC)


def retention_time(
    asked: str | None, retention_days: float | None, now: datetime
) -> datetime | None:
    """When an upload is deleted: the time its form asked for, else the server's retention."""
    if asked is not None:
        return delete_after_field(asked, now)
    return now + timedelta(days=retention_days) if retention_days else None
