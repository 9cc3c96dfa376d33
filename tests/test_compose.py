"""docker-compose.yml is right by construction: no Docker engine runs here or in CI, so the
file is checked against the official Compose Specification schema, by the real Compose CLI
(`config -q`, which needs no engine), and for Spool's own rules: startup order, health checks,
settings names, one image, no secrets in the file.

The schema and the CLI come from the Go module proxy at pinned versions
(devstack/compose_schema.py); when they cannot be had the tests fail in CI and skip elsewhere.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from devstack import compose_schema
from devstack.temporal import SEARCH_ATTRIBUTES
from spool.config import Settings
from tests.support.services import service_missing

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_DIR = ROOT / "deploy" / "env"
ENV_EXAMPLE = ROOT / ".env.example"
SPOOL_IMAGE = "spool:local"
# The one-shot jobs every Spool process must wait for.
REQUIRED_JOBS = ("migrate", "temporal-search-attributes", "create-bucket")

SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|PWD|SECRET|TOKEN|_KEYS?|_KEY_ID|CREDENTIALS?)$")
# ${NAME:?message} or ${NAME?message}: required, and no default that could be a secret.
REQUIRED_REF = re.compile(r"^\$\{[A-Z_][A-Z0-9_]*:?\?[^}]*\}$")
URL_CREDENTIALS = re.compile(r"://[^/\s:@]+:([^@\s]+)@")
ENV_LINE = re.compile(r"^([A-Z_][A-Z0-9_]*)=(.*)$")


# --- loading -----------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    # SafeLoader resolves anchors and `<<` merge keys the way Compose does.
    return yaml.safe_load(COMPOSE_FILE.read_text())


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = ENV_LINE.match(line)
        assert match, f"{path.name}:{number}: not KEY=VALUE: {line!r}"
        assert match[1] not in values, f"{path.name}:{number}: {match[1]} set twice"
        values[match[1]] = match[2]
    return values


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def env_files(service: dict[str, Any]) -> list[Path]:
    entries = service.get("env_file") or []
    if isinstance(entries, str | dict):
        entries = [entries]
    return [ROOT / (e["path"] if isinstance(e, dict) else e) for e in entries]


def layered_env_files(service: dict[str, Any]) -> dict[str, str]:
    """What a service's env files set, later files over earlier ones, as Compose layers them."""
    merged: dict[str, str] = {}
    for path in env_files(service):
        merged |= read_env_file(path)
    return merged


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # short form: no condition = service_started
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def one_shot_jobs(services: dict[str, Any]) -> set[str]:
    """Services something waits on to *complete*: they run once and exit."""
    return {
        name
        for svc in services.values()
        for name, cond in depends_on(svc).items()
        if cond == "service_completed_successfully"
    }


def spool_services(services: dict[str, Any]) -> set[str]:
    return {name for name, svc in services.items() if svc.get("image") == SPOOL_IMAGE}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose) -> dict[str, Any]:
    return compose["services"]


# --- (a) the official Compose Specification ----------------------------------------------


def _tool(getter):
    try:
        return getter()
    except compose_schema.ToolUnavailable as exc:
        service_missing(str(exc))


@pytest.mark.e2e
def test_compose_file_matches_the_compose_specification(compose):
    import json

    schema = json.loads(_tool(compose_schema.schema_path).read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
    )
    assert compose.get("name") == "spool"


def _run_compose_cli(*args: str, env_file: Path | str) -> subprocess.CompletedProcess:
    cli = _tool(compose_schema.compose_cli)
    # A bare environment: nothing from the developer's shell may fill a ${VAR}.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(ROOT / ".cache")}
    return subprocess.run(
        [
            str(cli),
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(env_file),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.e2e
@pytest.mark.timeout(1500)  # the first run builds the CLI (a few minutes), later runs reuse it
def test_docker_compose_config_accepts_the_project_with_env_example():
    proc = _run_compose_cli("config", "-q", env_file=ENV_EXAMPLE)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.e2e
@pytest.mark.timeout(1500)
def test_docker_compose_refuses_to_start_without_the_secrets():
    proc = _run_compose_cli("config", "-q", env_file=os.devnull)
    assert proc.returncode != 0
    assert "required variable" in proc.stderr and "is missing a value" in proc.stderr, proc.stderr


# --- (b) Spool's rules -------------------------------------------------------------------


def test_every_spool_variable_is_a_settings_field(compose, services):
    fields = set(Settings.model_fields)
    where: dict[str, list[str]] = {}
    blocks = {f"services.{n}.environment": environment(s) for n, s in services.items()}
    blocks |= {
        f"{k}": v
        for k, v in compose.items()
        if k.startswith("x-")
        and isinstance(v, dict)
        and all(isinstance(x, str | int | float | bool) for x in v.values())
    }
    blocks |= {f"deploy/env/{p.name}": read_env_file(p) for p in sorted(ENV_DIR.glob("*.env"))}
    for origin, block in blocks.items():
        for name in block:
            if name.startswith("SPOOL_") and name[len("SPOOL_") :].lower() not in fields:
                where.setdefault(name, []).append(origin)
    assert not where, f"not fields of spool.config.Settings: {where}"


def test_env_files_parse_as_settings(services, monkeypatch):
    """The role files, as each Spool service layers them, give valid Settings values."""
    for name in sorted(spool_services(services)):
        for var in [v for v in os.environ if v.startswith("SPOOL_")]:
            monkeypatch.delenv(var)
        for var, value in layered_env_files(services[name]).items():
            monkeypatch.setenv(var, value)
        Settings(_env_file=None)  # raises on a value of the wrong type


def test_env_files_hold_no_secrets_and_are_all_used(services):
    used = {p.resolve() for svc in services.values() for p in env_files(svc)}
    for path in sorted(ENV_DIR.glob("*.env")):
        assert path.resolve() in used, f"{path.name} is not used by any service"
        text = path.read_text()
        assert text.lstrip().startswith("#"), f"{path.name}: document it at the top"
        for var, value in read_env_file(path).items():
            assert not SECRET_NAME.search(var), f"{path.name}: {var} is a secret: use .env"
            assert not URL_CREDENTIALS.search(value), f"{path.name}: {var} has credentials"


def test_referenced_env_files_exist(services):
    for name, svc in services.items():
        for path in env_files(svc):
            assert path.is_file(), f"{name}: env_file {path.relative_to(ROOT)} does not exist"


def test_spool_processes_wait_for_migrate_and_search_attributes(services):
    jobs = one_shot_jobs(services)
    long_running = spool_services(services) - jobs
    assert {"api", "worker-pipeline", "worker-media", "worker-captions"} <= long_running
    for name in sorted(long_running):
        deps = depends_on(services[name])
        for job in REQUIRED_JOBS:
            assert deps.get(job) == "service_completed_successfully", (
                f"{name} must wait for {job} to complete successfully"
            )
    assert depends_on(services["migrate"]).get("postgresql") == "service_healthy"
    assert (
        depends_on(services["temporal"]).get("temporal-schema") == "service_completed_successfully"
    )
    assert depends_on(services["temporal-search-attributes"]).get("temporal") == "service_healthy"


def test_search_attribute_job_registers_what_the_workflows_upsert(services):
    job = environment(services["temporal-search-attributes"])
    pairs = dict(p.split("=", 1) for p in job["SEARCH_ATTRIBUTES"].split())
    assert pairs == SEARCH_ATTRIBUTES
    for name in spool_services(services):
        namespace = environment(services[name]).get("SPOOL_TEMPORAL_NAMESPACE")
        assert namespace == job["TEMPORAL_NAMESPACE"], f"{name} runs in another namespace"
    script = (ROOT / "deploy" / "temporal" / "setup-namespace.sh").read_text()
    assert "|| true" not in script


def test_the_media_queue_is_one_partition_under_the_name_the_workers_use(services):
    """Media hosts take a job's long chunks first only if the queue is one partition
    (workflows/policies.py): the dynamic config mounted into Temporal must name the media
    queue every Spool process of the compose project uses."""
    temporal = services["temporal"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in temporal["volumes"]}
    config_path = environment(temporal)["DYNAMIC_CONFIG_FILE_PATH"]
    config = yaml.safe_load((ROOT / mounted[config_path]).read_text())
    media_queues = set()
    for name in spool_services(services):
        merged = layered_env_files(services[name]) | environment(services[name])
        media_queues.add(
            merged.get("SPOOL_QUEUE_MEDIA", Settings.model_fields["queue_media"].default)
        )
    (queue,) = media_queues  # one name across the project
    for key in ("matching.numTaskqueueReadPartitions", "matching.numTaskqueueWritePartitions"):
        assert {"value": 1, "constraints": {"taskQueueName": queue}} in config[key], key


def test_every_long_running_service_has_a_healthcheck(services):
    jobs = one_shot_jobs(services)
    for name, svc in services.items():
        if name in jobs:
            # A finished job must stay finished: no restart policy that reruns it.
            assert str(svc.get("restart", "no")) == "no" or str(svc["restart"]).startswith(
                "on-failure"
            ), f"{name}: restart policy"
            continue
        check = svc.get("healthcheck") or {}
        test = check.get("test")
        assert test and not check.get("disable") and test != ["NONE"], (
            f"{name} runs for good but has no healthcheck"
        )


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")
    else:
        yield path, node


def test_no_literal_secret_in_the_compose_file(compose, services):
    blocks = {f"services.{n}": environment(s) for n, s in services.items()}
    blocks |= {k: v for k, v in compose.items() if k.startswith("x-") and isinstance(v, dict)}
    for origin, block in blocks.items():
        for var, value in block.items():
            if SECRET_NAME.search(str(var)) and isinstance(value, str):
                assert REQUIRED_REF.match(value), (
                    f"{origin}: {var} must be a required ${{VAR:?}} reference, not {value!r}"
                )
    for path, value in _walk(compose):
        if isinstance(value, str):
            for secret in URL_CREDENTIALS.findall(value):
                assert REQUIRED_REF.match(secret), f"{path}: credentials in a URL: {value!r}"


def test_env_example_has_every_referenced_variable_and_no_spool_names(compose):
    example = read_env_file(ENV_EXAMPLE)
    referenced = {
        name
        for _, value in _walk(compose)
        if isinstance(value, str)
        for name in re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", value)
    }
    assert referenced <= set(example), f"missing from .env.example: {referenced - set(example)}"
    # Settings also read ./.env: compose-only values must not become Spool settings.
    assert not [v for v in example if v.startswith("SPOOL_")]


def test_api_port_agrees_with_its_settings(services):
    port = read_env_file(ENV_DIR / "api.env")["SPOOL_API_PORT"]
    targets = [str(p).rsplit(":", 1)[-1] for p in services["api"].get("ports", [])]
    assert targets == [port], f"api publishes {targets}, listens on {port}"
    assert environment(services["api"]).get("SPOOL_API_HOST") == "0.0.0.0"


def test_the_spool_image_is_built_once(services):
    builders = [name for name, svc in services.items() if "build" in svc]
    assert len(builders) == 1, f"images built by {builders}: build one, share it by name"
    assert services[builders[0]].get("image") == SPOOL_IMAGE
    for name in spool_services(services) - set(builders):
        assert services[name].get("pull_policy") == "never", (
            f"{name} uses the locally built {SPOOL_IMAGE}: it must never be pulled"
        )


def test_images_are_pinned_and_no_minio(services):
    for name, svc in services.items():
        image = svc.get("image", "")
        assert "minio" not in image.lower(), f"{name}: MinIO is not used (AGPL)"
        if image == SPOOL_IMAGE:
            continue
        tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
        assert tag and tag != "latest", f"{name}: pin the image version ({image!r})"
