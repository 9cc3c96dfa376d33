"""Adaptive streaming endpoints: HLS playlists and segments, storyboard sprites and track.

Everything here is read from object storage under keys made by ``spool.storage.keys``.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["videos"])
