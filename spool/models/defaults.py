"""Defaults defined once: the settings start from them (spool/config.py) and the boundary
models fall back to them when a field is left out (an input written by hand, e.g. with the
``temporal`` CLI, or recorded before the field existed). No I/O: workflow code imports it.
"""

__all__ = [
    "INDEX_RETRY_SECONDS",
    "LANGUAGE",
    "MAX_POST_BODY_CHARS",
    "MAX_POST_FOLLOWERS",
    "MAX_POST_TITLE_CHARS",
    "QUEUE_CAPTIONS",
    "QUEUE_MEDIA",
    "QUEUE_PIPELINE",
]

# Task queues, by kind of work (docs/ARCHITECTURE.md, the flow of a job).
QUEUE_PIPELINE = "pipeline"
QUEUE_MEDIA = "media"
QUEUE_CAPTIONS = "captions"

# How long index_post keeps retrying an unavailable index: a day.
INDEX_RETRY_SECONDS = 24 * 3600

# A post's limits; a server's settings may change them at the door.
MAX_POST_BODY_CHARS = 200_000
MAX_POST_TITLE_CHARS = 300
# A post's explicit ``followers`` list travels in the workflow's input and history, so it is
# short; an audience of any size is the follower graph (PUT /v1/authors/{id}/followers/...),
# which the fan-out reads a page at a time.
MAX_POST_FOLLOWERS = 1_000

# The spoken language Whisper is told to expect.
LANGUAGE = "en"
