"""The varied set of sources bench/quality.py measures the rendition ladder on: short clips
made here from ffmpeg's generators, each encoded as an upload of its kind would be, and the
real clip in ``samples/``. Cached in ``.cache/bench/`` (git-ignored)."""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "bench"
SECONDS = 8


@dataclass(frozen=True)
class Content:
    """One source of the set: its name, what it shows, ffmpeg's generator graph and how the
    upload was encoded (a camera's keyframe every 2 s, its rate control)."""

    name: str
    shows: str
    graph: str
    encode: tuple[str, ...]
    # False when the generator, run again, does not give the upload's pictures back (16 to
    # 23 dB PSNR between them, measured): then scored against the upload only.
    reproducible: bool = True


# A camera or screen recorder at high quality: whatever the picture costs, up to 20 Mbit/s.
CAMERA = ("-preset", "fast", "-crf", "18", "-maxrate", "20M", "-bufsize", "40M")
# The upload: 1280x720 H.264 at 1.6 Mbit/s, as a web encoder makes it.
WEB_720P = ("-preset", "medium", "-b:v", "1600k", "-maxrate", "2400k", "-bufsize", "3200k")

# A cartoon: flat colours with hard black outlines moving over a sky and a ground, and a
# small screen of test card in the scene.
CARTOON = (
    "gradients=size=1920x1080:rate=30:c0=0x4aa3df:c1=0xd6eef8:x0=960:y0=0:x1=960:y1=1080"
    ":speed=0.00001:seed=1[sky];"
    "color=c=0x3c9d4e:size=1920x320:rate=30,drawbox=y=0:h=12:c=0x245e2f:t=fill[ground];"
    "color=c=0xe74c3c:size=300x300:rate=30,drawbox=c=black:t=10[a];"
    "color=c=0xf1c40f:size=180x420:rate=30,drawbox=c=black:t=10[b];"
    "testsrc2=size=480x270:rate=30,drawbox=c=black:t=8[tv];"
    "[sky][ground]overlay=y=760[s1];[s1][tv]overlay=x=1300:y=120[s2];"
    "[s2][a]overlay=x='160+1200*abs(sin(t*0.5))':y='460-200*abs(sin(t*2))'[s3];"
    "[s3][b]overlay=x='1500-700*abs(sin(t*0.3))':y=340"
)

GENERATED = (
    Content(
        "slides",
        "1080p, a new still picture every 2.5 s",
        "testsrc2=size=1920x1080:rate=2/5,fps=30",
        CAMERA,
    ),
    Content(
        "talking head",
        "720p at 1.6 Mbit/s, a small moving region on a still, grainy background",
        "gradients=size=1280x720:rate=30:speed=0.002:seed=1,noise=alls=4:allf=t[bg];"
        "testsrc2=size=360x480:rate=30,hue=s=0.4[head];"
        "[bg][head]overlay=x='460+30*sin(t*0.8)':y='140+10*sin(t*1.3)'",
        WEB_720P,
        reproducible=False,
    ),
    Content("animation", "1080p cartoon: flat colours, hard edges, moving", CARTOON, CAMERA),
    Content(
        "high-motion noise",
        "1080p, detail and grain changing in every frame",
        "testsrc2=size=1920x1080:rate=30,noise=alls=20:allf=t",
        CAMERA,
    ),
)
REAL = REPO / "samples" / "speech.mp4"


def source_path(content: Content) -> Path:
    """The clip of ``content`` (made on first use)."""
    slug = content.name.replace(" ", "-")
    recipe = hashlib.sha1(repr((content.graph, content.encode)).encode()).hexdigest()[:8]
    path = CACHE / f"content-{slug}-{SECONDS}s-{recipe}.mp4"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.mp4")
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"]
        + ["-i", content.graph, "-t", str(SECONDS), "-c:v", "libx264", *content.encode]
        + ["-g", "60", "-pix_fmt", "yuv420p", str(partial)],
        check=True,
    )
    partial.rename(path)
    return path


def original_input(content: Content) -> list[str]:
    """ffmpeg's input arguments for the pictures ``content`` was encoded from: the generators
    are deterministic (fixed seeds), so the original is made again rather than stored."""
    graph = f"{content.graph},format=yuv420p"
    return ["-f", "lavfi", "-i", graph, "-t", str(SECONDS)]


def the_set() -> list[tuple[str, str, Path, list[str] | None]]:
    """(name, what it shows, path, the original's input arguments or None) of every source:
    the generated ones, then the real clip (whose original is not at hand)."""
    made = [
        (c.name, c.shows, source_path(c), original_input(c) if c.reproducible else None)
        for c in GENERATED
    ]
    real = ("real clip", "samples/speech.mp4: 360p test card and speech, 31 kbit/s", REAL, None)
    return [*made, real]
