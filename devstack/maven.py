"""Artifacts from Maven Central, resolved with the ordinary client into the local repository."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from devstack.proc import StackError


def local_path(group: str, artifact: str, version: str, filename: str) -> Path:
    """Where the local Maven repository (~/.m2, or $MAVEN_REPO) keeps a file of an artifact."""
    m2 = Path(os.environ.get("MAVEN_REPO", Path.home() / ".m2" / "repository"))
    return m2.joinpath(*group.split("."), artifact, version, filename)


def fetch(coordinates: str, path: Path, what: str) -> Path:
    """``path`` (from ``local_path``), downloaded with ``mvn dependency:get`` if missing.

    ``coordinates`` is group:artifact:version[:packaging[:classifier]]; only that file is
    fetched (no transitive dependencies)."""
    if path.exists():
        return path
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            f"{what} is not in {path.parent} and `mvn` is not installed to fetch "
            "it (apt-get install maven)"
        )
    result = subprocess.run(
        [mvn, "-q", "dependency:get", f"-Dartifact={coordinates}", "-Dtransitive=false"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if result.returncode != 0 or not path.exists():
        raise StackError(
            f"could not download {coordinates} with mvn "
            f"(exit {result.returncode}): {(result.stdout + result.stderr)[-2000:]}"
        )
    return path
