"""The import rules of docs/ARCHITECTURE.md ("What must stay true"), checked on the code: the
layers only ever import downwards."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

pytestmark = pytest.mark.unit

# Every top-level name of this repository's code.
OURS = {
    "spool",
    "api",
    "workflows",
    "activities",
    "worker",
    "starter",
    "spool_cli",
    "devstack",
    "bench",
    "tests",
    "deploy",
}


def imported(path: Path) -> set[str]:
    """The absolute module names a file imports, wherever in the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            names |= {node.module or ""}
            # `from pkg import submodule` imports pkg.submodule
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def sources(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def ours(names: set[str], *, besides: set[str] = frozenset()) -> set[str]:
    return {name for name in names if name.split(".")[0] in OURS - besides}


@pytest.mark.parametrize("path", sources("spool"), ids=lambda p: str(p.relative_to(REPO)))
def test_the_spool_package_imports_nothing_built_on_it(path):
    """spool/ is what every process shares: it imports none of the entry points, the API,
    the workflows or the activities above it."""
    assert ours(imported(path), besides={"spool"}) == set()


@pytest.mark.parametrize("path", sources("activities"), ids=lambda p: p.name)
def test_activities_never_import_workflows(path):
    assert ours(imported(path), besides={"spool", "activities"}) == set()


@pytest.mark.parametrize("path", sources("workflows"), ids=lambda p: p.name)
def test_workflows_import_only_models_each_other_and_activity_references(path):
    """Workflow code is replayed in the sandbox: beside the standard library and temporalio,
    only spool.models, workflows.* and the activities they name (references, passed through)."""
    allowed = ("spool.models", "workflows", "activities", "temporalio", "__future__")
    for name in imported(path):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or name.startswith(allowed) or name == "spool":
            continue
        raise AssertionError(f"{path.name} imports {name}")


@pytest.mark.parametrize("path", sources("tests"), ids=lambda p: str(p.relative_to(REPO)))
def test_tests_share_code_only_through_the_support_package(path):
    """What two test modules need lives in tests/support/: no module imports a test module
    or conftest, so moving or deleting a test never breaks another."""
    shared = {
        name
        for name in ours(imported(path))
        if name.split(".")[0] == "tests" and name != "tests"
        if not name.startswith("tests.support")
    }
    assert shared == set()


def test_the_command_line_reaches_temporal_only_through_the_service_layer():
    """starter.py connects (spool.temporal) and hands the client to spool/clients.py, whose
    direct transport is the service layer; the command line itself never calls Temporal."""
    temporal = {name for name in imported(REPO / "starter.py") if name.startswith("temporalio")}
    assert temporal == set()
