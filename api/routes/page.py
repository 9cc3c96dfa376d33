"""What the web page at ``/`` asks the API for.

The page needs a key to upload and publish. ``GET /v1/config`` includes the first configured
key only when SPOOL_API_EXPOSE_KEY_TO_LOCALHOST=true, the request comes from a loopback
address without proxy headers (the embedded stack on one machine) and from the page's own
origin (no other site's ``Origin``: api/gate.py, ``same_origin``), on a host the API serves
(``ServedHosts``); otherwise the person pastes a key ("API key…"), kept in the browser's
localStorage.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from api.deps import Services, is_loopback_client, services
from api.gate import same_origin

router = APIRouter(prefix="/v1", tags=["page"])


class PageConfig(BaseModel):
    api_key: str | None
    public_reads: bool
    max_upload_bytes: int


@router.get("/config", response_model=PageConfig)
async def page_config(request: Request, svc: Services = Depends(services)) -> PageConfig:
    """What the web page needs. The API key is included only when
    settings.api_expose_key_to_localhost is on and the caller is the page, on this machine."""
    settings = svc.settings
    key = None
    if (
        settings.api_expose_key_to_localhost
        and settings.api_key_values
        and is_loopback_client(request)
        and same_origin(request.scope)
    ):
        key = settings.api_key_values[0]
    return PageConfig(
        api_key=key, public_reads=settings.public_reads, max_upload_bytes=settings.max_upload_bytes
    )
