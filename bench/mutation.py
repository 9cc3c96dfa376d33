"""Mutation testing of the code whose mistakes cost most, against its fast tests (mutmut 3).

    .venv/bin/python -m bench.mutation                 # every target
    .venv/bin/python -m bench.mutation storage notify  # some of them
    .venv/bin/python -m bench.mutation --survivors     # also print each surviving mutant

Each target runs in its own throw-away copy of the tree (mutmut writes mutated sources into
``mutants/`` and must never touch the working tree others edit), limited to the functions that
matter and to the tests that exercise them quickly. Prints the share of mutants killed per
target and, with --survivors, the diff of every mutant no test noticed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MUTMUT = Path(sys.executable).with_name("mutmut")
# Never copied into a target's tree: environments, caches, data, and other runs' mutants.
SKIPPED = {
    ".git",
    ".venv",
    ".cache",
    "var",
    "artifacts",
    "mutants",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "node_modules",
}
# mutmut names a method's mutants module.xǁClassǁmethod__mutmut_N.
M = "ǁ"


@dataclass(frozen=True)
class Target:
    name: str
    files: tuple[str, ...]
    mutants: tuple[str, ...]  # fnmatch patterns over mutmut's mutant names
    tests: tuple[str, ...]  # pytest arguments: the fast tests of this code


def functions(module: str, *names: str) -> tuple[str, ...]:
    """Mutant patterns for top-level functions and Class.method names of one module."""
    out = []
    for name in names:
        cls, _, method = name.rpartition(".")
        out.append(
            f"{module}.x{M}{cls}{M}{method}__mutmut_*" if cls else f"{module}.x_{name}__mutmut_*"
        )
    return tuple(out)


TARGETS = [
    Target(
        "storage",
        ("spool/storage/base.py", "spool/storage/local.py"),
        functions(
            "spool.storage.base",
            "check_key",
            "check_prefix",
            "ObjectStorage.writer",
            "ObjectStorage.put_bytes",
            "ObjectStorage.delete_prefix",
        )
        + functions(
            "spool.storage.local",
            "_LocalPending.__init__",
            "_LocalPending.write",
            "_LocalPending.commit",
            "_LocalPending.abort",
            "LocalStorage._path",
            "LocalStorage._existing",
            "LocalStorage.put_file",
            "LocalStorage.list_prefix",
            "LocalStorage.delete",
        ),
        ("tests/test_storage.py", "-k", "(local and not memory) or finished_local"),
    ),
    Target(
        "db.blog",
        ("spool/db/blog.py",),
        functions(
            "spool.db.blog",
            "record_post_for_author",
            "_store_post_version",
            "author_post_count",
            "followers_of",
            "add_followers",
        ),
        ("tests/test_db.py", "-k", "sqlite"),
    ),
    Target(
        "notify",
        ("spool/notify.py",),
        functions(
            "spool.notify", "_for_recipients", "_mark_delivered", "notify_once", "make_notifier"
        ),
        ("tests/test_db.py", "-k", "sqlite or make_notifier"),
    ),
    Target(
        "webhooks (SSRF guard)",
        ("spool/webhooks.py",),
        functions(
            "spool.webhooks",
            "_allowed_networks",
            "embedded_ipv4",
            "never_allowed",
            "_is_internal",
            "parse_destination",
            "check_addresses",
            "check_destination",
            "pinned_request",
            "_is_ip_literal",
        ),
        # Every test that needs no Temporal server (those start one per mutant).
        (
            "tests/test_webhooks.py",
            "-m",
            "not slow",
            "-k",
            "not (door or failing_subscriber or video_callback or captions_available)",
        ),
    ),
    Target(
        "media (argv builders, process control)",
        (
            "spool/media/tools.py",
            "spool/media/probe.py",
            "spool/media/poster.py",
            "spool/media/audio.py",
        ),
        functions(
            "spool.media.tools",
            "file_url",
            "ffmpeg_argv",
            "ffprobe_argv",
            "hardened_argv",
            "_kill_group",
            "_Output.read_stderr",
            "_Output.read_stdout",
            "_Output.collect",
            "_Output.tail",
            "_Output.last_line",
            "_Output.text",
            "_start",
            "run_tool",
            "run_ffmpeg",
        )
        + functions("spool.media.probe", "probe_args", "first_frames_args")
        + functions("spool.media.poster", "poster_args")
        + functions("spool.media.audio", "wav_args"),
        # Small clips and a stand-in tool: every run_tool mutant runs all of these, so none
        # may take long (about 10 s together); the 1080p and paced tests stay out.
        (
            "tests/test_media.py",
            "-k",
            "hardening or follows_its_settings or own_rendition_settings or requested_time "
            "or 16_bit or first_packets or odd_small or silent_source or run_tool or playlists",
        ),
    ),
]


def copy_tree(dest: Path) -> None:
    """The working tree as it is now (uncommitted edits included), without heavy state."""

    def ignore(_dir: str, names: list[str]) -> set[str]:
        return {n for n in names if n in SKIPPED or n.endswith(".pyc")}

    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)
    if (REPO / ".cache").exists():  # the test Elasticsearch and S3Proxy downloads
        (dest / ".cache").symlink_to(REPO / ".cache")


def configure(tree: Path, target: Target) -> None:
    """mutmut's settings for this target, in the copy's pyproject.toml only."""
    also = sorted(
        p.name
        for p in REPO.iterdir()
        if p.name not in SKIPPED
        and p.name not in ("spool", "tests")
        and (p.is_dir() or p.suffix == ".py")
        and not p.name.startswith(".")
    )
    section = {
        "source_paths": ["spool"],
        "only_mutate": list(target.files),
        "also_copy": also,
        "pytest_add_cli_args_test_selection": list(target.tests),
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-q"],
        "use_git_change_detection": False,
        "track_dependencies": False,
    }
    lines = ["", "[tool.mutmut]"] + [f"{k} = {json.dumps(v)}" for k, v in section.items()]
    with (tree / "pyproject.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def results(tree: Path) -> dict[str, str]:
    """mutant name → status (killed, survived, timeout, no tests, ...), as mutmut reports."""
    out = subprocess.run(
        [str(MUTMUT), "results", "--all", "true"],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    found = {}
    for line in out.stdout.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep:
            found[name] = status
    return found


def selected(found: dict[str, str], target: Target) -> dict[str, str]:
    from fnmatch import fnmatch

    return {n: s for n, s in found.items() if any(fnmatch(n, p) for p in target.mutants)}


def run_target(target: Target, jobs: int, show_survivors: bool) -> tuple[int, int, float]:
    """Mutate one target in a fresh copy; return (killed, total, seconds)."""
    with tempfile.TemporaryDirectory(prefix="spool-mutation-") as tmp:
        tree = Path(tmp) / "tree"
        copy_tree(tree)
        configure(tree, target)
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        env.pop("CI", None)  # a test that skips for a missing service is not a kill either way
        started = time.monotonic()
        run = subprocess.run(
            [str(MUTMUT), "run", "--max-children", str(jobs), *target.mutants],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.monotonic() - started
        found = selected(results(tree), target)
        if not found:
            print(run.stdout[-3000:], run.stderr[-3000:], sep="\n", file=sys.stderr)
            raise SystemExit(f"{target.name}: mutmut produced no results")
        killed = sum(1 for s in found.values() if s in ("killed", "timeout", "segfault"))
        survivors = sorted(
            n for n, s in found.items() if s not in ("killed", "timeout", "segfault")
        )
        for name in survivors:
            print(f"  survived ({found[name]}): {name}")
            if show_survivors:
                diff = subprocess.run(
                    [str(MUTMUT), "show", name],
                    cwd=tree,
                    capture_output=True,
                    text=True,
                    check=False,
                ).stdout
                print("    " + diff.strip().replace("\n", "\n    "))
        return killed, len(found), took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="target name prefixes (default: all)")
    # Two at most by default: the suite's real servers and other test runs share the cores,
    # and a starved mutant is misread as a timeout (counted killed).
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--survivors", action="store_true", help="print each survivor's diff")
    args = parser.parse_args(argv)
    if not MUTMUT.exists():
        raise SystemExit("mutmut is not installed: .venv/bin/pip install -e '.[dev]'")
    chosen = [
        t for t in TARGETS if not args.targets or any(t.name.startswith(p) for p in args.targets)
    ]
    rows = []
    for target in chosen:
        print(f"{target.name}: mutating {', '.join(target.files)} ...", flush=True)
        killed, total, took = run_target(target, args.jobs, args.survivors)
        rows.append((target.name, killed, total, took))
        print(
            f"{target.name}: {killed}/{total} killed ({killed / total:.0%}) in {took:.0f} s",
            flush=True,
        )
    print("\n| target | killed | mutants | share | time |\n|---|---|---|---|---|")
    for name, killed, total, took in rows:
        print(f"| {name} | {killed} | {total} | {killed / total:.0%} | {took:.0f} s |")
    return 0 if all(k / t >= 0.9 for _, k, t, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
