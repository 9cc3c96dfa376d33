"""Packaging: reproducible installs from the locks, the wheel's contents, the ``spool`` command.

`make install`, the Dockerfile and CI install from requirements*.lock (exact versions and
hashes); a dependency added to pyproject.toml without `make lock` would make every fresh
install fail or drift, so the locks are checked against pyproject.toml here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.paths import REPO
from tests.support.processes import environ_without_spool

pytestmark = pytest.mark.unit

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SPOOL = Path(sys.executable).with_name("spool")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)\s*(?:;\s*([^\\]+))?")


def locked(name: str) -> dict[str, tuple[str, str | None]]:
    """{canonical name: (version, marker)} of one lock file; each pin carries hashes."""
    text = (REPO / name).read_text()
    pins: dict[str, tuple[str, str | None]] = {}
    for block in re.split(r"\n(?=\S)", text):
        match = PIN.match(block)
        if not match:
            continue
        assert "--hash=sha256:" in block, f"{name}: {match.group(1)} is pinned without a hash"
        marker = match.group(3).strip() if match.group(3) else None
        pins[canonicalize_name(match.group(1))] = (match.group(2), marker)
    return pins


def applies(marker: str | None) -> bool:
    if marker is None:
        return True
    return Requirement(f"x; {marker}").marker.evaluate(default_environment())


@pytest.mark.parametrize(
    ("lock", "groups"),
    [
        ("requirements.lock", ["runtime"]),
        ("requirements-dev.lock", ["runtime", "dev"]),
    ],
)
def test_every_declared_dependency_is_locked_within_its_range(lock, groups):
    pins = locked(lock)
    declared = list(PYPROJECT["project"]["dependencies"])
    if "dev" in groups:
        declared += PYPROJECT["project"]["optional-dependencies"]["dev"]
    problems = []
    for spec in declared:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req.name} is not in {lock} (run `make lock`)")
        elif not req.specifier.contains(pins[name][0], prereleases=True):
            problems.append(f"{lock} pins {req.name}=={pins[name][0]}, outside {req.specifier}")
    assert not problems, "\n".join(problems)


def test_runtime_and_dev_locks_agree():
    """The image (runtime lock) runs the versions the suite (dev lock) tested."""
    runtime, dev = locked("requirements.lock"), locked("requirements-dev.lock")
    differ = {n: (v, dev[n][0]) for n, (v, _) in runtime.items() if n in dev and dev[n][0] != v}
    assert not differ
    assert set(runtime) <= set(dev)


def test_this_environment_was_installed_from_the_dev_lock():
    pins = locked("requirements-dev.lock")
    drift = {}
    for name, (version, marker) in pins.items():
        if not applies(marker):
            continue
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            drift[name] = (version, "missing")
            continue
        if installed != version:
            drift[name] = (version, installed)
    assert not drift, f"installed versions differ from requirements-dev.lock: {drift}"


# What the Dockerfile's build stage copies before `pip wheel .`.
IMAGE_SOURCES = [
    "pyproject.toml",
    "spool",
    "workflows",
    "activities",
    "api",
    "worker.py",
    "starter.py",
    "spool_cli.py",
]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """Built as the image builds it: from a copy of the sources the Dockerfile copies (an
    in-tree build would leave build/ behind in the checkout)."""
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in IMAGE_SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
        else:
            shutil.copy2(REPO / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        check=True,
        cwd=out,
        timeout=300,
        capture_output=True,
    )
    (path,) = out.glob("spool-*.whl")
    return zipfile.ZipFile(path)


@pytest.mark.e2e
def test_the_wheel_installs_only_spools_own_top_level_names(wheel):
    names = wheel.namelist()
    top = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert top == {
        "spool",
        "workflows",
        "activities",
        "api",
        "worker.py",
        "starter.py",
        "spool_cli.py",
    }
    # Everything a non-editable install needs at run time is carried.
    assert any(n.startswith("spool/db/migrations/versions/") and n.endswith(".py") for n in names)
    assert "spool/db/migrations/script.py.mako" in names
    assert "api/static/index.html" in names
    page = {f"api/static/{p.name}" for p in (REPO / "api/static").iterdir() if p.is_file()}
    assert page <= set(names), page - set(names)  # the page's script modules too
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert re.search(r"^spool = spool_cli:main$", wheel.read(entry_points).decode(), re.M)


def run_spool(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SPOOL), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environ_without_spool(), **env},
    )


def test_spool_command_lists_its_subcommands_and_refuses_unknown_ones():
    shown = run_spool("--help")
    assert shown.returncode == 0
    for name in ("blog", "video", "status", "wait", "cancel", "worker", "migrate", "api"):
        assert name in shown.stdout
    unknown = run_spool("publish")
    assert unknown.returncode == 2
    assert "unknown command 'publish'" in unknown.stderr


def test_spool_passes_arguments_and_exit_codes_through(tmp_path):
    """`spool migrate --check` is `python -m spool.migrate --check`: same exit code (3 when
    the database is not at head), same message; `spool status` without an id is a usage error."""
    db = f"sqlite:///{tmp_path / 'fresh.db'}"
    checked = run_spool("migrate", "--check", SPOOL_DATABASE_URL=db, SPOOL_DATA_DIR=str(tmp_path))
    assert checked.returncode == 3, checked.stderr
    migrated = run_spool("migrate", SPOOL_DATABASE_URL=db, SPOOL_DATA_DIR=str(tmp_path))
    assert migrated.returncode == 0, migrated.stderr
    assert (
        run_spool(
            "migrate", "--check", SPOOL_DATABASE_URL=db, SPOOL_DATA_DIR=str(tmp_path)
        ).returncode
        == 0
    )
    usage = run_spool("status")
    assert usage.returncode == 2
    assert "job_id" in usage.stderr
    assert run_spool("worker", "--help").returncode == 0


def test_the_image_is_built_from_the_sources_this_test_builds():
    dockerfile = (REPO / "Dockerfile").read_text()
    build_stage = dockerfile.split(" AS build", 1)[1].split("\nFROM ", 1)[0]
    from_context = [
        line
        for line in build_stage.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
    ]
    copied = [part for line in from_context for part in line.split()[1:-1]]
    assert sorted(copied) == sorted(IMAGE_SOURCES)
    assert "--require-hashes -r /tmp/requirements.lock" in dockerfile
