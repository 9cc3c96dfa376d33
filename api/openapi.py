"""The parts of /openapi.json that depend on the server's settings.

A route's schema is written once, in its module; what a server is configured to accept
(the post limits, whether a video may carry a callback URL, the upload limit) is stated here
so that a request the document calls valid is one this server accepts, and the other way
round.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.upload_form import upload_form_schema
from spool.config import Settings


def _webhooks_enabled(settings: Settings) -> bool:
    return "webhook" in settings.notifier_kinds and bool(settings.webhook_secret)


def _describe(document: dict[str, Any], settings: Settings) -> dict[str, Any]:
    post = document["components"]["schemas"]["PostIn"]["properties"]
    post["title"]["maxLength"] = settings.max_post_title_chars
    post["body"]["maxLength"] = settings.max_post_body_chars
    _state_followers_cap(post["followers"], settings.max_post_followers)
    upload = document["paths"]["/v1/videos"]["post"]["requestBody"]
    form = upload_form_schema(_webhooks_enabled(settings))
    # The size cap is stated in words, not as maxLength: a file over it is a 413, which a
    # schema violation is not expected to be.
    with_file = next(b for b in form["oneOf"] if "file" in b["required"])
    with_file["properties"]["file"]["description"] = (
        f"the video; at most {settings.max_upload_bytes} bytes (else 413)"
    )
    upload["content"]["multipart/form-data"]["schema"] = form
    return document


def _state_followers_cap(followers: dict[str, Any], cap: int) -> None:
    """The explicit list's cap (SPOOL_MAX_POST_FOLLOWERS) and where a larger audience goes."""
    for option in followers.get("anyOf", [followers]):
        if option.get("type") == "array":
            option["maxItems"] = min(cap, option.get("maxItems", cap))
    followers["description"] = (
        f"ids to notify, at most {cap}; omit to notify the author's followers from the "
        "follower graph (/v1/authors/{author_id}/followers), which has no size limit"
    )


def describe_settings(app: FastAPI, settings: Settings) -> None:
    """Make ``app.openapi()`` state this server's settings (built once, then kept)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _describe(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                ),
                settings,
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
