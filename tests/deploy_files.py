"""What the deployment files are made of, loaded once for the static checks in
`test_deploy_compose.py` and `test_deploy_files.py`."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values

from api.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

CORE_SERVICES = {"redis", "livekit", "sip", "api", "worker", "agent"}
LOCAL_AI_SERVICES = {"ollama", "ollama-pull", "speaches", "speaches-models"}
OUTDIAL_COMMANDS = {
    "api": ["outdial", "api"],
    "worker": ["outdial", "worker"],
    "agent": ["outdial", "agent", "start"],
}
# livekit-agents serves its health check (`GET /`) on this port in production mode.
AGENT_HEALTH_PORT = 8081
# What the agent worker reads besides LiveKit's variables (documented in docs/agents.md).
AGENT_ENV = {
    "OPENAI_API_KEY",
    "OUTDIAL_LLM_BASE_URL",
    "OUTDIAL_LLM_MODEL",
    "OUTDIAL_STT_BASE_URL",
    "OUTDIAL_STT_MODEL",
    "OUTDIAL_TTS_BASE_URL",
    "OUTDIAL_TTS_MODEL",
    "OUTDIAL_TTS_VOICE",
}
AGENT_NEEDS = {"LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "OUTDIAL_AGENT_NAME"}
# Settings whose code defaults only suit a process on a developer's machine (127.0.0.1, empty
# credentials): every deployment must set them, though Settings has a default.
DEPLOY_REQUIRED = {
    "REDIS_URL",
    "LIVEKIT_URL",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "OUTDIAL_ADMIN_TOKEN",
    "OUTDIAL_PUBLIC_URL",
}
# Left empty in the examples on purpose; deploy/init-env.sh generates the first three.
SECRETS = {"LIVEKIT_API_SECRET", "OUTDIAL_ADMIN_TOKEN", "OUTDIAL_SECRET_KEY", "OPENAI_API_KEY"}
GENERATED_SECRETS = {"LIVEKIT_API_SECRET", "OUTDIAL_ADMIN_TOKEN", "OUTDIAL_SECRET_KEY"}
# .env.example values that differ from the Settings defaults: compose service addresses.
COMPOSE_ADDRESSES = {"REDIS_URL", "LIVEKIT_URL", "LIVEKIT_API_KEY", "OUTDIAL_PUBLIC_URL"}

INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
LOCAL_URL = re.compile(r"http://(?:127\.0\.0\.1|localhost):([0-9]+|%s)(/[^'\"\s]*)")


# ------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    with path.open() as handle:
        return yaml.safe_load(handle)


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


@cache
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return services[name]


def service_env(name: str) -> dict[str, str]:
    env = service(name).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: str(value) for key, value in env.items()}


def env_files(name: str) -> list[str]:
    files = service(name).get("env_file") or []
    return [files] if isinstance(files, str) else list(files)


@cache
def livekit_config() -> dict[str, Any]:
    return load_yaml(DEPLOY / "livekit.yaml")


@cache
def sip_config() -> dict[str, Any]:
    return load_yaml(DEPLOY / "sip.yaml")


@cache
def env_example() -> dict[str, str | None]:
    return dict(dotenv_values(ENV_EXAMPLE))


@cache
def k8s_documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs.extend(load_yaml_documents(path))
    return docs


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in k8s_documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name!r} in deploy/k8s, found {len(found)}"
    return found[0]


def k8s_container(role: str) -> dict[str, Any]:
    deployment = k8s_object("Deployment", f"outdial-{role}")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"outdial-{role} should run one container"
    return containers[0]


@cache
def k8s_configmap() -> dict[str, str]:
    return k8s_object("ConfigMap", "outdial")["data"]


@cache
def k8s_secret_keys() -> dict[str, str | None]:
    return dict(dotenv_values(K8S / "secret.env.example"))


def settings_aliases() -> dict[str, str]:
    """Environment name -> field name of every setting."""
    return {(field.alias or name).upper(): name for name, field in Settings.model_fields.items()}


def required_settings() -> set[str]:
    no_default = {
        (field.alias or name).upper()
        for name, field in Settings.model_fields.items()
        if field.is_required()
    }
    return no_default | DEPLOY_REQUIRED


def interpolated(value: str) -> list[tuple[str, str, str]]:
    """(variable, operator, argument) of every ${...} in a compose value."""
    return [(m.group(1), m.group(2) or "", m.group(3) or "") for m in INTERPOLATION.finditer(value)]


def compose_interpolations() -> list[tuple[str, str, str]]:
    return interpolated(COMPOSE_FILE.read_text())


# ------------------------------------------------------------------------------------------
# The application's routes (api.app must import: a failure here is a failure, not a skip)
# ------------------------------------------------------------------------------------------


@cache
def app() -> Any:
    import api.app

    return api.app.app


def is_route(path: str, method: str) -> bool:
    from starlette.routing import Match

    scope = {
        "type": "http",
        "path": path,
        "root_path": "",
        "method": method,
        "headers": [],
        "query_string": b"",
    }
    return any(route.matches(scope)[0] == Match.FULL for route in app().router.routes)
