"""What the deployment files are made of, loaded once for the static checks in
`test_deploy_compose.py` and `test_deploy_files.py`: the YAML as written, and, when a
compose binary is installed, the configuration `docker-compose config` resolves from it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
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
# Left empty in the examples on purpose; deploy/init-env.sh generates GENERATED_SECRETS.
SECRETS = {
    "LIVEKIT_API_SECRET",
    "OUTDIAL_ADMIN_TOKEN",
    "OUTDIAL_SECRET_KEY",
    "OPENAI_API_KEY",
    "REDIS_SENTINEL_PASSWORD",
}
GENERATED_SECRETS = {"LIVEKIT_API_SECRET", "OUTDIAL_ADMIN_TOKEN", "OUTDIAL_SECRET_KEY"}
# .env.example values that differ from the Settings defaults: compose service addresses.
COMPOSE_ADDRESSES = {"REDIS_URL", "LIVEKIT_URL", "LIVEKIT_API_KEY", "OUTDIAL_PUBLIC_URL"}
# The images docker-compose.yml pulls (the Outdial image is built locally).
THIRD_PARTY_IMAGES = {
    "redis": "redis",
    "livekit": "livekit/livekit-server",
    "sip": "livekit/sip",
    "ollama": "ollama/ollama",
    "ollama-pull": "ollama/ollama",
    "speaches": "ghcr.io/speaches-ai/speaches",
    "speaches-models": "ghcr.io/speaches-ai/speaches",
}
# livekit/sip v1.11.0 keeps a closed call's RTP port bound until no packet arrived for this
# long (pkg/config/config.go DefaultRTPDrainingIdleTimeout), unless sip.yaml overrides it.
SIP_RTP_DRAIN_SECONDS = 30

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


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, timeout=30
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def filled_env_text() -> str:
    """.env.example with every secret set: what a deployment's .env looks like."""
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.partition("=")[0] in SECRETS:
            line = line.partition("=")[0] + "=" + "0123456789abcdef" * 4
        lines.append(line)
    return "\n".join(lines) + "\n"


def run_compose_config(
    workdir: Path, env_text: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """`<compose> [args] config` on a copy of the deployment files with `env_text` as .env.
    Only PATH and HOME reach it: variables of this shell must not stand in for .env."""
    command = compose_command()
    assert command is not None
    shutil.copy(COMPOSE_FILE, workdir / "docker-compose.yml")
    if not (workdir / "deploy").exists():
        shutil.copytree(DEPLOY, workdir / "deploy")
    (workdir / ".env").write_text(env_text)
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    return subprocess.run(
        [*command, *args, "config"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@cache
def resolved_compose() -> dict[str, Any] | None:
    """The configuration compose itself resolves (anchors, merges, interpolation from a
    filled .env, both profiles), or None when no compose binary is installed."""
    if compose_command() is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        result = run_compose_config(Path(tmp), filled_env_text(), "--profile", "local-ai")
    assert result.returncode == 0, result.stdout + result.stderr
    return yaml.safe_load(result.stdout)


def compose_sources() -> list[tuple[str, dict[str, Any]]]:
    """The compose file as written and, when available, as compose resolves it: each
    structural check runs on both, so YAML tricks cannot hide a difference."""
    sources = [("docker-compose.yml", compose())]
    resolved = resolved_compose()
    if resolved is not None:
        sources.append(("docker-compose config", resolved))
    return sources


def depends_on(svc: dict[str, Any]) -> dict[str, str]:
    """dependency -> condition, for the list and the mapping forms."""
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (how or {}).get("condition", "service_started") for name, how in deps.items()}


def port_bindings(svc: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(host ip, host ports, container ports, protocol) of each published port, from the
    short syntax ("127.0.0.1:80:80/tcp") or compose v2's resolved long syntax."""
    result = []
    for spec in svc.get("ports") or []:
        if isinstance(spec, dict):
            target = str(spec["target"])
            published = str(spec.get("published", target))
            result.append((spec.get("host_ip", ""), published, target, spec.get("protocol", "tcp")))
            continue
        ports, _, proto = str(spec).partition("/")
        parts = ports.rsplit(":", 2)
        assert len(parts) in (2, 3), f"use [IP:]HOST:CONTAINER[/proto] ports, got {spec!r}"
        host_ip = parts[0] if len(parts) == 3 else ""
        result.append((host_ip, parts[-2], parts[-1], proto or "tcp"))
    return result


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
