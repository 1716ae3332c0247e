"""The container recipe cannot be built here (no image registry): lint it, and check that what it runs
is what the README's "Deploying" section tells operators."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from app.settings import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text()
DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "compose.yaml").read_text())
HADOLINT = Path(sys.executable).parent / "hadolint"


def deploying_section() -> str:
    match = re.search(r"^## Deploying\n(.*?)(?=^## )", README, re.S | re.M)
    assert match, "README has a Deploying section"
    return match.group(1)


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([str(HADOLINT), "Dockerfile"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def final_stage() -> str:
    return DOCKERFILE.rsplit("\nFROM ", 1)[1]


def test_the_image_is_multi_stage_non_root_with_runtime_dependencies_only() -> None:
    assert DOCKERFILE.count("\nFROM ") + DOCKERFILE.startswith("FROM ") >= 2
    assert "uv sync --frozen --no-default-groups" in DOCKERFILE  # neither `dev` nor the `local` stand-ins
    user = re.search(r"^USER (\S+)$", final_stage(), re.M)
    assert user and user.group(1).isdigit() and int(user.group(1)) > 0
    for needed in ("app", "templates", "static", "migrations", "scripts/serve", "piccolo_conf.py", "plans.toml"):
        assert re.search(rf"^COPY .*\b{re.escape(needed)}\b", DOCKERFILE, re.M), needed
    healthcheck = re.search(r"^HEALTHCHECK .*\n\s+CMD (.*)$", final_stage(), re.M)
    assert healthcheck and "/healthz" in healthcheck.group(1)


def command_of(service: dict[str, Any]) -> str:
    command = service["command"]
    return command if isinstance(command, str) else shlex.join(command)


def test_compose_runs_a_migration_two_web_processes_and_a_worker_as_the_readme_says() -> None:
    services = COMPOSE["services"]
    assert {"postgres", "redis", "migrate", "web", "worker"} <= set(services)
    section = deploying_section()
    image_cmd = re.search(r'^CMD \["([^"]+)"\]$', DOCKERFILE, re.M)
    assert image_cmd and f"`{image_cmd.group(1)}`" in section
    for name in ("migrate", "web", "worker"):
        assert f"`{command_of(services[name])}`" in section, f"{name}: {command_of(services[name])}"
    assert services["migrate"]["restart"] == "no"
    assert services["web"]["deploy"]["replicas"] == 2
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["env_file"] == ".env"
        environment = services[name]["environment"]
        assert environment["APP_ENV"] == "production" and environment["EVENT_WORKER"] == "off"
        assert environment["REDIS_URL"].startswith("redis://redis:")
    worker_check = services["worker"]["healthcheck"]["test"]
    assert worker_check == ["CMD", "litestar", "billing", "worker", "--check"]
    assert "`litestar billing worker --check`" in section and "`GET /healthz`" in section


def test_the_env_example_names_only_documented_settings() -> None:
    names = [
        line.split("=", 1)[0]
        for line in (PROJECT_ROOT / "env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", README))
    assert names and [n for n in names if n not in documented and n != "POSTGRES_PASSWORD"] == []
