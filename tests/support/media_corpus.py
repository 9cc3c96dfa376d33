"""A corpus of hostile and odd uploads, every file generated here (ffmpeg lavfi, espeak-ng,
Python bytes), never downloaded.

Each case says what it is and what Spool must do with it: refuse it with a typed, non-retryable
``InvalidVideo`` whose message contains ``refused``, or accept it with the probe values in
``accepted`` (and then make a rendition, a poster and, with audio, the 16 kHz WAV).
``tests/test_bad_input.py`` runs every case through the real activities; ``corpus_table()``
lists them, including any case this machine cannot build (and why).
"""

from __future__ import annotations

import functools
import random
import re
import shutil
import struct
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import media_clips
from tests.support.media_checks import ffprobe_json

CLIP_SECONDS = 2.0
FFMPEG = media_clips.FFMPEG
# The shell, ffmpeg and ffconcat all give these characters a meaning; Spool must not care.
SPECIAL_NAME = "-i $(touch pwned); `id` 'q' \"d\" | %d *?[a] concat:file: ,x.mp4"


@dataclass(frozen=True)
class Context:
    """Where a case builds its file, and what hostile playlists may point at."""

    workdir: Path
    data_dir: Path  # the test's Spool data dir
    other_file: Path  # another upload inside the data dir, a valid MPEG-TS
    listen_url: str  # http://127.0.0.1:PORT/ of a listener that records any connection


@dataclass(frozen=True)
class Accepted:
    """Probe values Spool must report (as displayed: rotation applied)."""

    width: int
    height: int
    has_audio: bool
    video_codec: str
    duration: float = CLIP_SECONDS
    rotation: int | None = None


@dataclass(frozen=True)
class Bounds:
    """What one hostile upload may cost the worker that probes it: wall time and growth of
    its peak memory (tests/probe_once.py measures both in a process of its own)."""

    seconds: float = 60.0
    memory_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    make: Callable[[Context], Path]
    refused: str | None = None  # a phrase the refusal must contain
    accepted: Accepted | None = None
    limits: dict = field(default_factory=dict)  # Settings overrides for this case
    needs_encoder: str | None = None
    playlist: bool = False  # points outside storage: nothing may be read or connected to
    check_file: Callable[[Path], None] | None = None  # proves the file is what it claims
    bounds: Bounds | None = None  # checked in a worker process of its own when set

    def __post_init__(self) -> None:
        assert (self.refused is None) != (self.accepted is None), self.name

    def unavailable(self) -> str | None:
        """Why this machine cannot build the case, or None."""
        missing = media_clips.tools_missing()
        if missing:
            return missing
        if self.needs_encoder and self.needs_encoder not in installed_encoders():
            return f"ffmpeg here has no {self.needs_encoder} encoder"
        return None

    @property
    def outcome(self) -> str:
        if self.refused:
            return f"refused: …{self.refused}…"
        a = self.accepted
        assert a is not None
        return (
            f"accepted: {a.width}x{a.height} {a.video_codec} {a.duration:g} s"
            f"{' +audio' if a.has_audio else ''}"
        )


@functools.lru_cache(maxsize=1)
def installed_encoders() -> frozenset[str]:
    out = subprocess.run(
        ["ffmpeg", "-hide_banner", "-encoders"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    # The legend ends at a line of dashes; then one encoder a line: " V....D libx264  ...".
    listing = out.split("------", 1)[-1].splitlines()
    return frozenset(line.split()[1] for line in listing if len(line.split()) > 1)


def _ffmpeg(*args: str | Path) -> None:
    subprocess.run([*FFMPEG, *map(str, args)], check=True, capture_output=True, timeout=120)


# --- building blocks -------------------------------------------------------------------------


def _picture(size: str = "160x120", rate: int = 10, pattern: str = "testsrc") -> list[str]:
    return ["-f", "lavfi", "-i", f"{pattern}=size={size}:rate={rate}"]


def _tone(rate: int = 16000) -> list[str]:
    return ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={rate}"]


H264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
AAC = ["-c:a", "aac", "-b:a", "64k"]
SECONDS = ["-t", f"{CLIP_SECONDS}"]


def _clip(path: Path, *extra: str, size: str = "160x120", audio: bool = True) -> Path:
    """A 2 s H.264 test pattern, with a 440 Hz tone unless ``audio`` is false."""
    inputs = _picture(size) + (_tone() if audio else [])
    _ffmpeg(*inputs, *SECONDS, *H264, *(AAC if audio else []), *extra, path)
    return path


def _moov_at_end(ctx: Context) -> Path:
    """ffmpeg's default MP4 layout: samples first, index (moov) last."""
    return _clip(ctx.workdir / "moov-at-end.mp4")


def _mpegts(path: Path) -> Path:
    _ffmpeg(*_picture(), *_tone(), *SECONDS, *H264, *AAC, "-f", "mpegts", path)
    return path


# --- not media at all ------------------------------------------------------------------------


def _empty(ctx: Context) -> Path:
    return media_clips.make_empty(ctx.workdir / "empty.mp4")


def _random_bytes(ctx: Context) -> Path:
    path = ctx.workdir / "random.mp4"
    path.write_bytes(random.Random(20261127).randbytes(256 * 1024))
    return path


def _text(ctx: Context) -> Path:
    return media_clips.make_text_file(ctx.workdir / "notes.mp4")


def _truncated(ctx: Context) -> Path:
    full = _moov_at_end(ctx).read_bytes()
    path = ctx.workdir / "truncated.mp4"
    path.write_bytes(full[: len(full) // 2])
    return path


def _image(ext: str) -> Callable[[Context], Path]:
    def make(ctx: Context) -> Path:
        image = ctx.workdir / f"picture.{ext}"
        _ffmpeg(*_picture("64x64"), "-frames:v", "1", image)
        path = ctx.workdir / f"{ext}-renamed.mp4"
        shutil.copyfile(image, path)
        return path

    make.__name__ = f"make_{ext}"
    return make


def _animated_gif(ctx: Context) -> Path:
    gif = ctx.workdir / "animated.gif"
    _ffmpeg(*_picture("64x64", rate=5), *SECONDS, gif)
    path = ctx.workdir / "gif-renamed.mp4"
    shutil.copyfile(gif, path)
    return path


def _pdf(ctx: Context) -> Path:
    path = ctx.workdir / "document.mp4"
    path.write_bytes(
        b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )
    return path


def _zip(ctx: Context) -> Path:
    """A ZIP whose only member is a real video: still not a video."""
    path = ctx.workdir / "archive.mp4"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.write(_moov_at_end(ctx), "inside.mp4")
    return path


# --- playlists pointing outside storage ------------------------------------------------------


def _target(ctx: Context, where: str) -> str:
    return {
        "etc_passwd": "/etc/passwd",
        "data_dir_file": str(ctx.other_file),
        "url": f"{ctx.listen_url}segment.ts",
    }[where]


def _hls(where: str) -> Callable[[Context], Path]:
    def make(ctx: Context) -> Path:
        path = ctx.workdir / f"playlist-{where}.mp4"
        path.write_text(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n"
            f"#EXTINF:2.0,\n{_target(ctx, where)}\n#EXT-X-ENDLIST\n"
        )
        return path

    return make


def _ffconcat(where: str) -> Callable[[Context], Path]:
    def make(ctx: Context) -> Path:
        path = ctx.workdir / f"concat-{where}.mp4"
        path.write_text(f"ffconcat version 1.0\nfile '{_target(ctx, where)}'\nduration 2\n")
        return path

    return make


# --- streams that are missing, empty or lying ------------------------------------------------


def _audio_only(ctx: Context) -> Path:
    return media_clips.make_audio_only(ctx.workdir / "voice.m4a")


def _mp3_with_cover(ctx: Context) -> Path:
    """Music with cover art: a picture stream, but no video."""
    cover = ctx.workdir / "cover.png"
    _ffmpeg(*_picture("64x64"), "-frames:v", "1", cover)
    path = ctx.workdir / "song.mp4"
    _ffmpeg(
        *_tone(44100),
        "-i",
        cover,
        *SECONDS,
        "-map",
        "0",
        "-map",
        "1",
        "-c:a",
        "libmp3lame",
        "-c:v",
        "copy",
        "-disposition:v",
        "attached_pic",
        "-f",
        "mp3",
        path,
    )
    return path


def _srt(ctx: Context) -> Path:
    path = ctx.workdir / "subs.srt"
    path.write_text(
        "1\n00:00:00,000 --> 00:00:01,000\nHello\n\n2\n00:00:01,000 --> 00:00:02,000\nWorld\n"
    )
    return path


def _subtitles_only(ctx: Context) -> Path:
    path = ctx.workdir / "subtitles-only.mkv"
    _ffmpeg("-i", _srt(ctx), "-c:s", "srt", path)
    return path


def _zero_length_streams(ctx: Context) -> Path:
    """A fragmented MP4 whose moov declares H.264 and AAC tracks and no fragment follows."""
    path = ctx.workdir / "zero-length.mp4"
    _ffmpeg(
        "-i",
        _moov_at_end(ctx),
        "-ss",
        "100",
        "-c",
        "copy",
        "-movflags",
        "frag_keyframe+empty_moov",
        path,
    )
    return path


def _raw_avi(ctx: Context, name: str, declared: tuple[int, int]) -> Path:
    """A 16x16 raw-video AVI whose headers (avih, strf) declare ``declared``."""
    raw = ctx.workdir / "raw16.avi"
    _ffmpeg(*_picture("16x16", rate=5), "-t", "1", "-c:v", "rawvideo", "-pix_fmt", "yuv420p", raw)
    data = bytearray(raw.read_bytes())
    size = struct.pack("<II", *declared)
    avih = data.find(b"avih") + 8 + 32  # dwWidth, dwHeight
    strf = data.find(b"strf") + 8 + 4  # BITMAPINFOHEADER biWidth, biHeight
    data[avih : avih + 8] = size
    data[strf : strf + 8] = size
    path = ctx.workdir / name
    path.write_bytes(bytes(data))
    return path


def _zero_size(ctx: Context) -> Path:
    return _raw_avi(ctx, "zero-size.avi", (0, 0))


def _declares_8k_over_tiny_frames(ctx: Context) -> Path:
    return _raw_avi(ctx, "lying-8k.avi", (7680, 4320))


def _raw_h264(ctx: Context) -> Path:
    """An H.264 elementary stream: pictures without a container, so without a duration."""
    path = ctx.workdir / "raw.mp4"
    _ffmpeg(*_picture(), *SECONDS, *H264, "-f", "h264", path)
    return path


def _solid(ctx: Context, name: str, size: str) -> Path:
    """Two frames of one colour at ``size``: a tiny stream behind a huge picture size."""
    path = ctx.workdir / name
    _ffmpeg("-f", "lavfi", "-i", f"color=c=navy:size={size}:rate=2", "-t", "1", *H264, path)
    return path


def _boxes(data: bytes | bytearray, start: int, end: int):
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        if size < 8:
            return
        yield start, size, kind
        start += size


def _claims_ten_hours(ctx: Context) -> Path:
    """2 s of samples under mvhd, tkhd, mdhd and elst durations that all claim 10 hours."""
    data = bytearray(_moov_at_end(ctx).read_bytes())
    ten_hours = 36000

    def patch(start: int, end: int) -> None:
        for at, size, kind in _boxes(data, start, end):
            if kind in (b"trak", b"mdia", b"edts"):
                patch(at + 8, at + size)
            elif kind in (b"mvhd", b"mdhd"):  # version 0: timescale at +20, duration at +24
                timescale = struct.unpack(">I", data[at + 20 : at + 24])[0]
                data[at + 24 : at + 28] = struct.pack(">I", timescale * ten_hours)
            elif kind == b"tkhd":  # version 0: duration (movie timescale) at +28
                data[at + 28 : at + 32] = struct.pack(">I", 1000 * ten_hours)
            elif kind == b"elst":  # version 0: first segment duration at +16
                data[at + 16 : at + 20] = struct.pack(">I", 1000 * ten_hours)

    [(moov, size, _)] = [b for b in _boxes(data, 0, len(data)) if b[2] == b"moov"]
    patch(moov + 8, moov + size)
    path = ctx.workdir / "ten-hours.mp4"
    path.write_bytes(bytes(data))
    return path


def _header_says_ten_hours(path: Path) -> None:
    assert float(ffprobe_json(path, "-show_format")["format"]["duration"]) == 36000.0


def _declares(width: int, height: int) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        [stream] = ffprobe_json(path, "-show_streams")["streams"]
        assert (stream["width"], stream["height"]) == (width, height), stream

    return check


def _index_is_last(path: Path) -> None:
    data = path.read_bytes()
    assert data.rfind(b"moov") > data.find(b"mdat") > 0


# --- headers that hide what decoding costs -------------------------------------------------

LYING_MKV_SECONDS = 600


def _header_claims_two_seconds(ctx: Context) -> Path:
    """Ten minutes of 1 fps pictures and low-rate Opus in Matroska, whose Segment duration
    and per-track DURATION tags all say 2 s."""
    honest = ctx.workdir / "ten-minutes.mkv"
    _ffmpeg(
        *_picture("32x32", rate=1),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=300:sample_rate=8000",
        "-t",
        str(LYING_MKV_SECONDS),
        *H264,
        "-c:a",
        "libopus",
        "-b:a",
        "6k",
        "-ac",
        "1",
        honest,
    )
    data = bytearray(honest.read_bytes())
    at = data.find(b"\x44\x89\x88")  # Info/Duration: an 8-byte float, in milliseconds
    data[at + 3 : at + 11] = struct.pack(">d", 2000.0)
    for tag in re.findall(rb"\d\d:\d\d:\d\d\.\d{9}", bytes(data)):  # DURATION tags
        data = data.replace(tag, b"00:00:02.000000000")
    path = ctx.workdir / "claims-two-seconds.mkv"
    path.write_bytes(bytes(data))
    return path


def _says_two_seconds_over_ten_minutes(path: Path) -> None:
    assert float(ffprobe_json(path, "-show_format")["format"]["duration"]) == 2.0
    late = ffprobe_json(path, "-read_intervals", "590%+#1", "-show_packets")["packets"]
    assert float(late[0]["pts_time"]) > 500, late


def _thousand_fps(ctx: Context) -> Path:
    """20 s of 32x32 pictures at 1000 frames a second: 20,000 frames in 0.4 MB."""
    path = ctx.workdir / "thousand-fps.mp4"
    _ffmpeg(*_picture("32x32", rate=1000), "-t", "20", *H264, path)
    return path


def _mjpeg_thin_pixels(ctx: Context) -> Path:
    """Two 24000x4000 MJPEG frames of 1:8 pixels: shown 3000x4000, decoded 24000x4000."""
    path = ctx.workdir / "thin-pixels.avi"
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=c=navy:size=24000x4000:rate=2",
        "-t",
        "1",
        "-vf",
        "setsar=1/8",
        "-c:v",
        "mjpeg",
        "-q:v",
        "31",
        path,
    )
    return path


def _stored_24000x4000_shown_3000x4000(path: Path) -> None:
    [stream] = ffprobe_json(path, "-show_streams")["streams"]
    assert (stream["width"], stream["height"], stream["sample_aspect_ratio"]) == (
        24000,
        4000,
        "1:8",
    ), stream


# --- odd but fine ----------------------------------------------------------------------------


def _mkv_with_attachments(ctx: Context) -> Path:
    """Video and audio, two subtitle tracks, a PNG attachment (exposed as cover art) and a
    font attachment."""
    cover = ctx.workdir / "attached.png"
    _ffmpeg(*_picture("64x64"), "-frames:v", "1", cover)
    font = ctx.workdir / "font.ttf"
    font.write_bytes(b"\x00\x01\x00\x00" + bytes(252))
    srt = _srt(ctx)
    path = ctx.workdir / "attachments.mkv"
    _ffmpeg(
        "-i",
        _moov_at_end(ctx),
        "-i",
        srt,
        "-i",
        srt,
        "-map",
        "0",
        "-map",
        "1",
        "-map",
        "2",
        "-c:v",
        "copy",
        "-c:a",
        "copy",
        "-c:s",
        "srt",
        "-attach",
        cover,
        "-metadata:s:t:0",
        "mimetype=image/png",
        "-attach",
        font,
        "-metadata:s:t:1",
        "mimetype=application/x-truetype-font",
        path,
    )
    return path


def _has_attachments_and_subtitles(path: Path) -> None:
    kinds = [s["codec_type"] for s in ffprobe_json(path, "-show_streams")["streams"]]
    assert kinds.count("subtitle") == 2 and "attachment" in kinds, kinds


def _video_only(ctx: Context) -> Path:
    return _clip(ctx.workdir / "silent.mp4", audio=False)


def _one_by_one(ctx: Context) -> Path:
    path = ctx.workdir / "one-pixel.mp4"
    _ffmpeg(
        *_picture("1x1"),
        *SECONDS,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv444p",
        path,
    )
    return path


def _vfr(ctx: Context) -> Path:
    """Ten frames 50 ms apart, then ten 200 ms apart: 2.3 s of variable frame rate."""
    path = ctx.workdir / "vfr.mp4"
    _ffmpeg(
        *_picture(rate=20),
        "-frames:v",
        "20",
        "-vf",
        "setpts='if(lt(N,10),N*0.05,0.5+(N-10)*0.2)/TB'",
        "-fps_mode",
        "vfr",
        *H264,
        path,
    )
    return path


def _is_variable_rate(path: Path) -> None:
    [stream] = ffprobe_json(path, "-show_streams")["streams"]
    assert stream["r_frame_rate"] != stream["avg_frame_rate"], stream


def _hevc_10bit(ctx: Context) -> Path:
    path = ctx.workdir / "hevc10.mp4"
    _ffmpeg(
        *_picture(),
        *_tone(),
        *SECONDS,
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        "log-level=error",
        "-pix_fmt",
        "yuv420p10le",
        "-tag:v",
        "hvc1",
        *AAC,
        path,
    )
    return path


def _is_10bit(path: Path) -> None:
    streams = ffprobe_json(path, "-show_streams")["streams"]
    assert streams[0]["pix_fmt"] == "yuv420p10le", streams[0]


def _vp9_webm(ctx: Context) -> Path:
    path = ctx.workdir / "vp9.webm"
    _ffmpeg(
        *_picture(),
        *_tone(48000),
        *SECONDS,
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-b:v",
        "200k",
        "-c:a",
        "libopus",
        path,
    )
    return path


def _interlaced(ctx: Context) -> Path:
    path = ctx.workdir / "interlaced.mp4"
    _ffmpeg(
        *_picture(rate=25),
        *_tone(),
        *SECONDS,
        *H264,
        "-flags",
        "+ilme+ildct",
        "-top",
        "1",
        *AAC,
        path,
    )
    return path


def _is_interlaced(path: Path) -> None:
    stream = ffprobe_json(path, "-show_streams")["streams"][0]
    assert stream.get("field_order") in ("tt", "tb", "bb", "bt"), stream


def _surround(ctx: Context) -> Path:
    path = ctx.workdir / "surround.mp4"
    _ffmpeg(*_picture(), *_tone(48000), *SECONDS, *H264, "-ac", "6", *AAC, path)
    return path


def _channels(count: int, rate: int) -> Callable[[Path], None]:
    def check(path: Path) -> None:
        audio = [
            s for s in ffprobe_json(path, "-show_streams")["streams"] if s["codec_type"] == "audio"
        ]
        assert (audio[0]["channels"], int(audio[0]["sample_rate"])) == (count, rate), audio

    return check


def _mono_8k(ctx: Context) -> Path:
    path = ctx.workdir / "phone-call.mp4"
    _ffmpeg(*_picture(), *_tone(8000), *SECONDS, *H264, "-ac", "1", "-ar", "8000", *AAC, path)
    return path


HUGE_TAG_BYTES = 4 * 1024 * 1024


def _huge_metadata(ctx: Context) -> Path:
    """Megabytes of tags: thousands of 1 KB tags and one 1 MB comment."""
    meta = ctx.workdir / "metadata.txt"
    tags = [f"tag{i}={'x' * 1000}" for i in range(4000)]
    meta.write_text(";FFMETADATA1\n" + "\n".join(tags) + f"\ncomment={'y' * 1_048_576}\n")
    path = ctx.workdir / "tagged.mkv"
    _ffmpeg(
        "-i",
        _moov_at_end(ctx),
        "-f",
        "ffmetadata",
        "-i",
        meta,
        "-map",
        "0",
        "-map_metadata",
        "1",
        "-c",
        "copy",
        path,
    )
    return path


def _carries_megabytes_of_tags(path: Path) -> None:
    assert path.stat().st_size > HUGE_TAG_BYTES


def _rotated(name: str, size: str = "160x120") -> Callable[[Context], Path]:
    def make(ctx: Context) -> Path:
        """Landscape pictures with a display matrix turning them upright, as phones write."""
        width, height = map(int, size.split("x"))
        return media_clips.make_clip(
            ctx.workdir / name,
            width=width,
            height=height,
            seconds=CLIP_SECONDS,
            speech=None,
            tone=True,
            rotate=90,
        )

    return make


def _ts(ctx: Context) -> Path:
    return _mpegts(ctx.workdir / "broadcast.ts")


def _avi(ctx: Context) -> Path:
    path = ctx.workdir / "old.avi"
    _ffmpeg(
        *_picture(),
        *_tone(44100),
        *SECONDS,
        "-c:v",
        "mpeg4",
        "-q:v",
        "5",
        "-c:a",
        "libmp3lame",
        path,
    )
    return path


def _mpeg_ps(ctx: Context) -> Path:
    path = ctx.workdir / "dvd.mpg"
    _ffmpeg(
        *_picture(rate=25),
        *_tone(48000),
        *SECONDS,
        "-c:v",
        "mpeg2video",
        "-c:a",
        "mp2",
        "-f",
        "vob",
        path,
    )
    return path


def _special_name(ctx: Context) -> Path:
    return _clip(ctx.workdir / SPECIAL_NAME)


# --- the corpus ------------------------------------------------------------------------------

SMALL = dict(width=160, height=120, video_codec="h264")
UNKNOWN = "not a video Spool recognises"
PLAYLIST_TARGETS = {
    "etc_passwd": "/etc/passwd",
    "data_dir_file": "another upload in the data dir",
    "url": "a URL on a listener that records connections",
}

CASES: list[Case] = [
    Case("empty", "0 bytes", _empty, refused="empty (0 bytes)"),
    Case("random_bytes", "256 KiB of random bytes", _random_bytes, refused=UNKNOWN),
    Case("text_file", "plain text named .mp4", _text, refused=UNKNOWN),
    Case(
        "truncated_mp4",
        "the first half of an MP4 (moov at the end, lost)",
        _truncated,
        refused="index (the moov atom) is missing",
    ),
    Case("png_renamed", "a PNG named .mp4", _image("png"), refused="is a PNG image"),
    Case("jpeg_renamed", "a JPEG named .mp4", _image("jpg"), refused="is a JPEG image"),
    Case(
        "gif_renamed",
        "an animated GIF named .mp4 (gif is not a whitelisted container)",
        _animated_gif,
        refused="is a GIF image",
    ),
    Case("pdf_renamed", "a PDF named .mp4", _pdf, refused="is a PDF document"),
    Case("zip_renamed", "a ZIP holding a real MP4, named .mp4", _zip, refused="is a ZIP archive"),
    *[
        Case(
            f"hls_{where}",
            f"an HLS playlist pointing at {target}",
            _hls(where),
            refused="is an HLS playlist",
            playlist=True,
        )
        for where, target in PLAYLIST_TARGETS.items()
    ],
    *[
        Case(
            f"ffconcat_{where}",
            f"an ffconcat playlist pointing at {target}",
            _ffconcat(where),
            refused="is an ffconcat playlist",
            playlist=True,
        )
        for where, target in PLAYLIST_TARGETS.items()
    ],
    Case("audio_only", "speech in AAC, no video", _audio_only, refused="audio but no video"),
    Case(
        "mp3_with_cover_art",
        "an MP3 with an attached picture",
        _mp3_with_cover,
        refused="audio but no video",
    ),
    Case(
        "subtitles_only",
        "an MKV holding one subtitle track",
        _subtitles_only,
        refused="no video stream",
    ),
    Case(
        "zero_length_streams",
        "fragmented MP4: H.264 + AAC tracks, no samples",
        _zero_length_streams,
        refused="no duration",
    ),
    Case(
        "zero_size_video",
        "raw video in AVI declaring 0x0 pictures",
        _zero_size,
        refused="has no picture size (0x0)",
        check_file=_declares(0, 0),
    ),
    Case(
        "8k_header_over_tiny_frames",
        "AVI declaring 7680x4320 over 16x16 raw frames",
        _declares_8k_over_tiny_frames,
        refused="none of its first packets decodes",
        check_file=_declares(7680, 4320),
    ),
    Case("raw_h264", "an H.264 elementary stream, no container", _raw_h264, refused="no duration"),
    Case(
        "above_8k",
        "8192x4320, beyond the default 7680x4320 limit",
        lambda ctx: _solid(ctx, "8k-plus.mp4", "8192x4320"),
        refused="8192x4320; the limit is 7680x4320",
    ),
    Case(
        "over_size_limit",
        "a 2 s clip over SPOOL_MAX_UPLOAD_BYTES=10000",
        lambda ctx: _clip(ctx.workdir / "big.mp4"),
        limits={"max_upload_bytes": 10_000},
        refused="the limit is 10,000 bytes",
    ),
    Case(
        "over_duration_limit",
        "a 2 s clip over SPOOL_MAX_DURATION_SECONDS=1",
        lambda ctx: _clip(ctx.workdir / "long.mp4"),
        limits={"max_duration_seconds": 1},
        refused="2.0 s long; the limit is 1 s",
    ),
    Case(
        "over_width_limit",
        "320x180 over SPOOL_MAX_WIDTH=256",
        lambda ctx: _clip(ctx.workdir / "wide.mp4", size="320x180"),
        limits={"max_width": 256, "max_height": 240},
        refused="320x180; the limit is 256x240",
    ),
    Case(
        "over_height_limit",
        "200x200 over SPOOL_MAX_HEIGHT=180",
        lambda ctx: _clip(ctx.workdir / "tall.mp4", size="200x200"),
        limits={"max_width": 320, "max_height": 180},
        refused="200x200; the limit is 320x180",
    ),
    Case(
        "header_claims_2s_over_10min",
        "MKV whose Segment and track durations say 2 s over 10 min of video and audio",
        _header_claims_two_seconds,
        refused="its streams go on past",
        check_file=_says_two_seconds_over_ten_minutes,
        bounds=Bounds(),
    ),
    Case(
        "thousand_fps",
        "20 s of H.264 at 1000 frames a second (20,000 frames in 0.4 MB)",
        _thousand_fps,
        refused="1000 frames a second; the limit is 240",
        bounds=Bounds(),
    ),
    Case(
        "mjpeg_24000x4000_thin_pixels",
        "MJPEG stored 24000x4000 with 1:8 pixels, shown 3000x4000",
        _mjpeg_thin_pixels,
        refused="stored as 24000x4000 pixels",
        check_file=_stored_24000x4000_shown_3000x4000,
        bounds=Bounds(),
    ),
    # --- accepted ---
    Case(
        "moov_at_end",
        "MP4 with its index after the samples",
        _moov_at_end,
        accepted=Accepted(**SMALL, has_audio=True),
        check_file=_index_is_last,
    ),
    Case(
        "mkv_attachments_subtitles",
        "MKV: video, audio, 2 subtitle tracks, 2 attachments",
        _mkv_with_attachments,
        accepted=Accepted(**SMALL, has_audio=True),
        check_file=_has_attachments_and_subtitles,
    ),
    Case(
        "video_only",
        "H.264 without audio",
        _video_only,
        accepted=Accepted(**SMALL, has_audio=False),
    ),
    Case(
        "one_by_one",
        "a 1x1 picture (4:4:4)",
        _one_by_one,
        accepted=Accepted(1, 1, has_audio=False, video_codec="h264"),
    ),
    Case(
        "8k_header",
        "7680x4320 (the limit), a tiny solid-colour stream",
        lambda ctx: _solid(ctx, "8k.mp4", "7680x4320"),
        accepted=Accepted(7680, 4320, has_audio=False, video_codec="h264", duration=1.0),
    ),
    Case(
        "claims_ten_hours",
        "mvhd/tkhd/mdhd/elst claim 10 h over 2 s of samples",
        _claims_ten_hours,
        accepted=Accepted(**SMALL, has_audio=True),
        check_file=_header_says_ten_hours,
    ),
    Case(
        "variable_frame_rate",
        "frames 50 ms then 200 ms apart",
        _vfr,
        accepted=Accepted(**SMALL, has_audio=False, duration=2.3),
        check_file=_is_variable_rate,
    ),
    Case(
        "hevc_10bit",
        "HEVC Main 10 (yuv420p10le) in MP4",
        _hevc_10bit,
        accepted=Accepted(160, 120, has_audio=True, video_codec="hevc"),
        needs_encoder="libx265",
        check_file=_is_10bit,
    ),
    Case(
        "vp9_webm",
        "VP9 + Opus in WebM",
        _vp9_webm,
        accepted=Accepted(160, 120, has_audio=True, video_codec="vp9"),
        needs_encoder="libvpx-vp9",
    ),
    Case(
        "interlaced",
        "interlaced H.264 (top field first)",
        _interlaced,
        accepted=Accepted(**SMALL, has_audio=True),
        check_file=_is_interlaced,
    ),
    Case(
        "surround_5_1",
        "6-channel AAC",
        _surround,
        accepted=Accepted(**SMALL, has_audio=True),
        check_file=_channels(6, 48000),
    ),
    Case(
        "mono_8khz",
        "mono 8 kHz AAC",
        _mono_8k,
        accepted=Accepted(**SMALL, has_audio=True),
        check_file=_channels(1, 8000),
    ),
    Case(
        "huge_metadata",
        "MKV with ~4 MB of tags",
        _huge_metadata,
        accepted=Accepted(**SMALL, has_audio=True),
        check_file=_carries_megabytes_of_tags,
    ),
    Case(
        "rotated_phone",
        "160x120 with a 90° display matrix",
        _rotated("phone.mp4"),
        accepted=Accepted(120, 160, has_audio=True, video_codec="h264", rotation=90),
    ),
    Case(
        "portrait_within_limits",
        "a rotated 320x240 under limits of 320x240",
        _rotated("portrait.mp4", "320x240"),
        limits={"max_width": 320, "max_height": 240},
        accepted=Accepted(240, 320, has_audio=True, video_codec="h264", rotation=90),
    ),
    Case("mpegts", "H.264 + AAC in MPEG-TS", _ts, accepted=Accepted(**SMALL, has_audio=True)),
    Case(
        "avi",
        "MPEG-4 part 2 + MP3 in AVI",
        _avi,
        accepted=Accepted(160, 120, has_audio=True, video_codec="mpeg4"),
    ),
    Case(
        "mpeg_program_stream",
        "MPEG-2 video + MP2 in an MPEG-PS",
        _mpeg_ps,
        accepted=Accepted(160, 120, has_audio=True, video_codec="mpeg2video"),
    ),
    Case(
        "special_file_name",
        f"made as {SPECIAL_NAME!r}",
        _special_name,
        accepted=Accepted(**SMALL, has_audio=True),
    ),
]

CASES_BY_NAME = {case.name: case for case in CASES}
assert len(CASES_BY_NAME) == len(CASES), "case names must be unique"


def make_other_file(path: Path) -> Path:
    """The upload a hostile playlist would like to read: a valid MPEG-TS."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return _mpegts(path)


def corpus_table() -> str:
    """Every case, what it is, what Spool must do, and whether this machine can build it."""
    rows = [(c.name, c.what, c.outcome, c.unavailable() or "") for c in CASES]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [
        f"{name:<{widths[0]}}  {outcome:<{widths[2]}}  {what}"
        + (f"  [NOT BUILT HERE: {missing}]" if missing else "")
        for name, what, outcome, missing in rows
    ]
    return "\n".join(lines)
