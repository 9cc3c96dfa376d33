"""Video activities, one class per concern, each holding its clients:

- ``fetching.FetchActivities``: a video handed over as a URL, fetched into the store;
- ``probe.ProbeActivities``: the probe (limits enforced before any heavy work) and the plan;
- ``encoding.EncodeActivities``: what decodes the upload (chunks, AAC track, poster);
- ``packaging.PackageActivities``: MP4 and HLS variant per rendition, storyboard, master;
- ``packaging.LiveActivities``: the live playlists of a job that plays before it is ready;
- ``captions.CaptionsActivities``: the 16 kHz WAV, Whisper, the captions recorded;
- ``records.RecordActivities``: the video's row and the owner's notice;
- ``deletion.DeletionActivities``: a deleted video's job stopped, its objects and rows gone.

Each fetches its inputs into its own scratch folder and stores its outputs under final keys
(spool/storage/transfers.py), so any step runs on any worker and a cancelled or failed step
leaves nothing under a final key. ``VideoActivitySet`` builds every class once per worker,
sharing one storage client and one cache of uploads, and says which queue runs what.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from activities.video.captions import CaptionsActivities
from activities.video.deletion import DeletionActivities
from activities.video.encoding import EncodeActivities
from activities.video.fetching import FetchActivities
from activities.video.packaging import LiveActivities, PackageActivities
from activities.video.probe import ProbeActivities
from activities.video.records import RecordActivities
from spool.config import Settings
from spool.storage.transfers import Transfers

__all__ = [
    "CaptionsActivities",
    "DeletionActivities",
    "EncodeActivities",
    "FetchActivities",
    "LiveActivities",
    "PackageActivities",
    "ProbeActivities",
    "RecordActivities",
    "VideoActivitySet",
]


@dataclass
class VideoActivitySet:
    """Every video activity class of one worker, built once, sharing ``files``."""

    files: Transfers
    fetching: FetchActivities
    probing: ProbeActivities
    encoding: EncodeActivities
    packaging: PackageActivities
    live: LiveActivities
    captions: CaptionsActivities
    records: RecordActivities
    deletion: DeletionActivities

    @classmethod
    def from_settings(cls, settings: Settings) -> VideoActivitySet:
        files = Transfers.from_settings(settings)
        return cls(
            files=files,
            fetching=FetchActivities(settings, files),
            probing=ProbeActivities(settings, files),
            encoding=EncodeActivities(settings, files),
            packaging=PackageActivities(settings, files),
            live=LiveActivities(settings, files),
            captions=CaptionsActivities(settings, files),
            records=RecordActivities(settings, files),
            deletion=DeletionActivities(settings, files),
        )

    def pipeline_activities(self) -> list[Callable[..., Any]]:
        """Light steps (database, object store, playlists), beside the workflows."""
        return [
            self.fetching.fetch_source,
            self.probing.probe,
            self.records.record,
            self.captions.record_captions,
            self.records.notify_owner,
            self.probing.plan_encoding,
            self.packaging.publish_hls,
            self.live.publish_live,
            self.deletion.mark_deleting,
            self.deletion.stop_job,
            self.deletion.delete_objects,
            self.deletion.delete_records,
        ]

    def media_activities(self) -> list[Callable[..., Any]]:
        """ffmpeg's heavy steps."""
        return [
            self.encoding.extract_poster,
            self.encoding.encode_chunk,
            self.encoding.encode_audio,
            self.packaging.package_rendition,
            self.packaging.make_storyboard,
        ]

    def captions_activities(self) -> list[Callable[..., Any]]:
        """The captions' audio and Whisper."""
        return [self.captions.extract_audio, self.captions.transcribe]
