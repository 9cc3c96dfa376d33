"""Patch ids: every ``workflow.patched`` id the workflows use, named here and nowhere else.

A change to what a workflow schedules (an activity added, removed or reordered, a timer, a
child) would break runs already in flight, which replay their history against today's code
(docs/ARCHITECTURE.md, rule 7). Such a change goes behind a patch, then the patch is
deprecated, then removed (docs/versioning.md):

    CAPTIONS_FIRST = "captions-first"      # why, and the release that added it
    ALL = frozenset({CAPTIONS_FIRST})

    if workflow.patched(patches.CAPTIONS_FIRST): ...   # new runs; old runs keep the old path

The development-era patches were retired before the first release, with the histories that
needed them. ``tests/test_replay.py`` checks that every patch a saved history
recorded is listed in ``ALL``.
"""

from __future__ import annotations

# Renditions chosen by the picture's short side, so a portrait video gets its own full size
# (720x1280 is 720p). Asked only for a portrait source: a landscape one's rungs are the same
# either way, so its history records no marker. Added 2026-12-07.
RUNGS_BY_SHORT_SIDE = "rungs-by-short-side"

# A job that plays early (a plan with live playlists) gets its first chunk onto a media host
# before anything else: its media tasks are scheduled in waves a timer apart, and its
# captions start once it is playable (workflows/live.py, EncodeWaves). Asked only for such a
# plan. Added 2026-12-07.
PLAYABLE_FIRST = "playable-first"

# The job's status kept in its memo (STATUS_MEMO), upserted once at the end of each workflow
# task that changed it, so the status a user asks for needs no worker: an upsert is a
# history event, which runs recorded before it did not write. Added 2026-12-07.
STATUS_MEMO = "status-memo"

# An upload whose sound is not AAC plays before its whole AAC track is made: each live
# publish encodes the sound's first part itself, as far as the pictures reach, until the
# whole track is there (workflows/live.py). Asked only for such an upload with live
# playlists: one with AAC copies its own. Added 2026-12-07.
LIVE_AUDIO_PART = "live-audio-part"

# Every patch id in use (patched or deprecated), so a saved history's markers can be checked.
ALL: frozenset[str] = frozenset({RUNGS_BY_SHORT_SIDE, PLAYABLE_FIRST, STATUS_MEMO, LIVE_AUDIO_PART})
