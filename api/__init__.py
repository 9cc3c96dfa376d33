"""Spool's HTTP API: uploads, job status, media, posts, search and the web page."""

from api.app import create_app

__all__ = ["create_app"]
