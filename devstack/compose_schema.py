"""Pinned tools that check docker-compose.yml without a Docker engine, fetched from the Go
module proxy (a registry with a checksum database), never from an arbitrary URL.

- schema_path(): the Compose Specification JSON schema, as shipped in compose-go (the library
  Docker Compose itself validates with), at COMPOSE_GO_VERSION.
- compose_cli(): the Docker Compose v2 CLI built from source at COMPOSE_VERSION and cached,
  for `docker-compose config -q` (parses, interpolates and checks a project; no engine needed).

Modules land in .cache/go, the binary in .cache/compose (both git-ignored), so a second run is
offline and quick; the ~1 GB Go build cache lives only as long as one CLI build.
``python -m devstack.compose_schema [--cli]`` prints the schema path (and the CLI path).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

COMPOSE_GO_MODULE = "github.com/compose-spec/compose-go/v2"
COMPOSE_GO_VERSION = "v2.16.2"
SCHEMA_IN_MODULE = Path("schema") / "compose-spec.json"

# The last Compose v2 release; v5 needs a newer Go toolchain than the one CI has.
COMPOSE_MODULE = "github.com/docker/compose/v2"
COMPOSE_VERSION = "v2.40.3"

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE = REPO_ROOT / ".cache"
CLI_DIR = CACHE / "compose"

DOWNLOAD_TIMEOUT = 300
BUILD_TIMEOUT = 1200


class ToolUnavailable(RuntimeError):
    """go is missing, or a module could not be downloaded or built; the message says which."""


def go_env() -> dict[str, str]:
    """Environment for `go`: Go's own module and build caches (shared by every clone on the
    machine, as Maven's ~/.m2 is for Elasticsearch, so CI's fresh clone rebuilds from warm
    caches), modules resolved from go.mod only through the proxy, and the local toolchain
    (no auto-download)."""
    env = dict(os.environ)
    env.update(
        GOFLAGS="-mod=mod",
        GOTOOLCHAIN="local",
        CGO_ENABLED="0",
    )
    return env


def go() -> str:
    found = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if not found:
        raise ToolUnavailable("`go` is not installed (needed to fetch the Compose schema)")
    return found


def download_module(module: str, version: str) -> Path:
    """`go mod download` one pinned module version; the directory of its extracted source."""
    try:
        proc = subprocess.run(
            [go(), "mod", "download", "-json", f"{module}@{version}"],
            env=go_env(),
            cwd=tempfile.gettempdir(),
            capture_output=True,
            text=True,
            timeout=DOWNLOAD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ToolUnavailable(f"go mod download {module}@{version}: timed out") from exc
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError:
        info = {}
    if proc.returncode != 0 or info.get("Error") or not info.get("Dir"):
        detail = info.get("Error") or proc.stderr.strip() or f"exit {proc.returncode}"
        raise ToolUnavailable(f"go mod download {module}@{version}: {detail}")
    return Path(info["Dir"])


def schema_path() -> Path:
    """The Compose Specification JSON schema at the pinned compose-go version."""
    path = download_module(COMPOSE_GO_MODULE, COMPOSE_GO_VERSION) / SCHEMA_IN_MODULE
    if not path.is_file():
        raise ToolUnavailable(
            f"{SCHEMA_IN_MODULE} is not in {COMPOSE_GO_MODULE}@{COMPOSE_GO_VERSION}"
        )
    return path


def compose_cli() -> Path:
    """The Docker Compose CLI at COMPOSE_VERSION, built once and cached in .cache/compose.

    Built inside a writable copy of the downloaded module, so the module's own go.mod (its
    replace directives and pinned dependencies) decides what is compiled in."""
    binary = CLI_DIR / f"docker-compose-{COMPOSE_VERSION}"
    if binary.is_file():
        return binary
    source = download_module(COMPOSE_MODULE, COMPOSE_VERSION)
    CLI_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="compose-src-", dir=CLI_DIR) as tmp:
        work = Path(tmp) / "src"
        # The module cache is read-only; go may rewrite go.mod/go.sum, and the temporary
        # directory must be removable afterwards.
        shutil.copytree(source, work, copy_function=shutil.copyfile)
        for path in [work, *work.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        partial = Path(tmp) / "docker-compose"
        env = go_env()
        try:
            proc = subprocess.run(
                [go(), "build", "-trimpath", "-o", str(partial), "./cmd"],
                env=env,
                cwd=work,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ToolUnavailable(f"building docker compose {COMPOSE_VERSION}: timed out") from exc
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise ToolUnavailable(f"building docker compose {COMPOSE_VERSION} failed:\n{tail}")
        # Atomic: a concurrent or interrupted run never leaves a half-written binary.
        os.replace(partial, binary)
    return binary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli", action="store_true", help="also build/print the compose CLI")
    args = parser.parse_args()
    print(schema_path())
    if args.cli:
        print(compose_cli())


if __name__ == "__main__":
    main()
