"""Static checks of the deployment files against the code.

Parses docker-compose.yml, deploy/*.yaml, deploy/k8s/*, .env.example and deploy/Dockerfile
and checks the contracts between them and the application: one LiveKit key pair everywhere,
one Redis for LiveKit and SIP, webhook and probe paths that are real routes, port ranges that
match, every setting of api.settings.Settings provided. No Docker engine is needed; only the
`docker-compose config` check skips when no compose binary is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
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


def test_route_lookup_tells_routes_from_non_routes() -> None:
    assert is_route("/healthz", "GET")
    assert not is_route("/healthz", "POST")
    assert not is_route("/no-such-route-here", "GET")


# ------------------------------------------------------------------------------------------
# Compose: services, credentials, Redis, webhook, health, order
# ------------------------------------------------------------------------------------------


def published(name: str) -> list[tuple[str, str, str]]:
    """(host ports, container ports, protocol) of each short-syntax port of a service."""
    result = []
    for spec in service(name).get("ports", []):
        spec = str(spec)
        ports, _, proto = spec.partition("/")
        parts = ports.split(":")
        assert len(parts) in (2, 3), f"{name}: use HOST:CONTAINER[/proto] ports, got {spec!r}"
        result.append((parts[-2], parts[-1], proto or "tcp"))
    return result


def container_ports(name: str, proto: str) -> set[str]:
    ports = set()
    for host, container, protocol in published(name):
        assert host == container, f"{name}: publish {container} on the same host port"
        if protocol == proto:
            ports.add(container)
    return ports


def healthcheck_command(name: str) -> list[str]:
    test = service(name).get("healthcheck", {}).get("test")
    assert test, f"{name} has no healthcheck"
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    assert test[0] in ("CMD", "CMD-SHELL"), f"{name}: healthcheck test must start with CMD"
    return list(test)


def healthcheck_url(name: str) -> tuple[str, str]:
    """(port, path) of the local URL a healthcheck requests."""
    match = LOCAL_URL.search(" ".join(healthcheck_command(name)))
    assert match, f"{name}: healthcheck requests no http://127.0.0.1:PORT/ URL"
    return match.group(1), match.group(2)


def api_port() -> str:
    command = service("api")["command"]
    return command[command.index("--port") + 1]


def test_compose_has_the_services_and_the_local_ai_profile() -> None:
    services = compose()["services"]
    assert set(services) == CORE_SERVICES | LOCAL_AI_SERVICES
    for name in CORE_SERVICES:
        assert "profiles" not in services[name], f"{name} must run without a profile"
    for name in LOCAL_AI_SERVICES:
        assert services[name].get("profiles") == ["local-ai"], name


def test_one_livekit_key_pair_feeds_livekit_sip_api_worker_agent() -> None:
    keys = interpolated(service_env("livekit")["LIVEKIT_KEYS"])
    assert [var for var, _, _ in keys] == ["LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"]
    assert re.fullmatch(r"\$\{[^}]+\}: \$\{[^}]+\}", service_env("livekit")["LIVEKIT_KEYS"])
    # The webhook signing key must be the same key (livekit.yaml leaves webhook.api_key out).
    webhook_key = interpolated(service_env("livekit")["LIVEKIT_WEBHOOK_API_KEY"])
    assert [var for var, _, _ in webhook_key] == ["LIVEKIT_API_KEY"]
    for name in ("sip", "api", "worker", "agent"):
        env = service_env(name)
        for var in ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET"):
            assert var in env, f"{name} does not get {var}"
            assert [v for v, _, _ in interpolated(env[var])] == [var], f"{name}: {var}"
    # Nothing may hard-code a key that could drift from the environment.
    assert not {"keys", "key_file"} & set(livekit_config())
    assert "api_key" not in livekit_config()["webhook"]
    assert not {"api_key", "api_secret"} & set(sip_config())


def test_compose_refuses_to_start_without_the_secrets() -> None:
    guarded = {var for var, op, _ in compose_interpolations() if op == ":?"}
    assert {"LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "OUTDIAL_ADMIN_TOKEN"} <= guarded
    # An unguarded ${VAR} would silently become an empty string.
    for var, op, _ in compose_interpolations():
        assert op in (":?", ":-"), f"${{{var}}} needs a default (:-) or a guard (:?)"


def test_livekit_and_sip_use_the_compose_redis() -> None:
    redis = service("redis")
    assert str(redis["image"]).startswith("redis:")
    assert "--port" not in redis.get("command", []), "the checks below assume port 6379"
    bundled = "redis:6379"
    assert livekit_config()["redis"]["address"] == bundled
    assert sip_config()["redis"]["address"] == bundled
    redis_url = urlsplit(env_example()["REDIS_URL"] or "")
    assert f"{redis_url.hostname}:{redis_url.port or 6379}" == bundled
    for name in ("livekit", "sip"):
        assert service(name)["depends_on"]["redis"]["condition"] == "service_healthy"


def test_redis_keeps_an_append_only_file_in_a_volume() -> None:
    redis = service("redis")
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    volume, _, target = redis["volumes"][0].partition(":")
    assert target == "/data" and volume in compose()["volumes"]


def test_sip_and_outdial_reach_livekit_by_its_service_name() -> None:
    ws_url = urlsplit(sip_config()["ws_url"])
    assert (ws_url.hostname, ws_url.port) == ("livekit", livekit_config()["port"])
    livekit_url = urlsplit(env_example()["LIVEKIT_URL"] or "")
    assert (livekit_url.hostname, livekit_url.port) == ("livekit", livekit_config()["port"])


def test_livekit_webhook_points_at_the_api_route() -> None:
    urls = livekit_config()["webhook"]["urls"]
    assert len(urls) == 1
    url = urlsplit(urls[0])
    assert url.hostname == "api" and "api" in compose()["services"]
    assert str(url.port) == api_port()
    assert url.path == "/v1/livekit/webhook"
    assert is_route(url.path, "POST"), f"POST {url.path} is not a route of api.app"


def test_api_healthcheck_is_a_route() -> None:
    port, path = healthcheck_url("api")
    assert port == api_port()
    assert is_route(path, "GET"), f"GET {path} is not a route of api.app"


def test_worker_and_agent_healthchecks_probe_their_ports() -> None:
    port, path = healthcheck_url("worker")
    command = " ".join(healthcheck_command("worker"))
    default_port = Settings.model_fields["worker_metrics_port"].default
    assert port == "%s" and path == "/metrics"
    assert f"os.environ.get('OUTDIAL_WORKER_METRICS_PORT', '{default_port}')" in command
    assert env_example()["OUTDIAL_WORKER_METRICS_PORT"] == str(default_port)
    assert healthcheck_url("agent") == (str(AGENT_HEALTH_PORT), "/")


def test_python_healthchecks_compile() -> None:
    for name in ("api", "worker", "agent"):
        command = healthcheck_command(name)
        assert command[:3] == ["CMD", "python", "-c"], f"{name}: use python (no curl in image)"
        compile(command[3], f"{name} healthcheck", "exec")


def test_services_start_in_order_once_healthy() -> None:
    expected = {
        "livekit": {"redis"},
        "sip": {"redis", "livekit"},
        "api": {"redis", "livekit", "sip"},
        "worker": {"redis", "livekit", "sip", "api"},
        "agent": {"livekit", "api"},
    }
    for name, needs in expected.items():
        depends_on = service(name)["depends_on"]
        assert set(depends_on) == needs, name
        for dependency, how in depends_on.items():
            assert how == {"condition": "service_healthy"}, f"{name} -> {dependency}"
            healthcheck_command(dependency)
    for name in CORE_SERVICES:
        healthcheck_command(name)
        assert service(name)["restart"] == "unless-stopped", name


def test_api_worker_agent_run_one_image_with_env_file() -> None:
    first = service("api")
    dockerfile = ROOT / first["build"]["context"] / first["build"]["dockerfile"]
    assert dockerfile == DEPLOY / "Dockerfile"
    for name, command in OUTDIAL_COMMANDS.items():
        svc = service(name)
        assert svc["image"] == first["image"] and svc["build"] == first["build"], name
        assert svc["command"][: len(command)] == command, name
        assert env_files(name) == [".env"], name
        assert svc.get("init") is True, f"{name}: PID 1 must reap children"


def test_ports_line_up() -> None:
    lk = livekit_config()
    rtc = lk["rtc"]
    assert container_ports("livekit", "tcp") == {str(lk["port"]), str(rtc["tcp_port"])}
    assert container_ports("livekit", "udp") == {
        f"{rtc['port_range_start']}-{rtc['port_range_end']}"
    }
    sip = sip_config()
    assert container_ports("sip", "udp") == {str(sip["sip_port"]), sip["rtp_port"]}
    assert container_ports("sip", "tcp") == {str(sip["sip_port"])}
    assert f"/dev/tcp/127.0.0.1/{sip['health_port']}" in healthcheck_command("sip")[-1]
    assert container_ports("api", "tcp") == {api_port()}
    assert "ports" not in service("redis"), "Redis must not be published on the host"


def test_stop_grace_covers_a_call() -> None:
    def seconds(text: str) -> int:
        units = {"h": 3600, "m": 60, "s": 1}
        parts = re.findall(r"(\d+)([hms])", text)
        assert "".join(n + u for n, u in parts) == text, f"unsupported duration {text!r}"
        return sum(int(n) * units[u] for n, u in parts)

    max_call = int(env_example()["OUTDIAL_MAX_DURATION_SECONDS"] or 0)
    assert max_call == Settings.model_fields["default_max_duration_seconds"].default
    for name in ("agent", "sip"):
        assert seconds(service(name)["stop_grace_period"]) >= max_call + 30, name


def test_required_settings_reach_api_and_worker() -> None:
    # env_file passes every line of .env; an empty one must be guarded somewhere, because one
    # failed ${VAR:?} interpolation stops the whole project from starting.
    example = env_example()
    guarded = {var for var, op, _ in compose_interpolations() if op == ":?"}
    for name in ("api", "worker"):
        env = service_env(name)
        for var in required_settings():
            assert var in env or var in example, f"{name} does not get {var}"
            assert env.get(var) or example.get(var) or var in guarded, f"{var} may stay empty"


def test_agent_gets_its_variables() -> None:
    example = env_example()
    env = service_env("agent")
    for var in AGENT_NEEDS | AGENT_ENV:
        assert var in env or var in example, f"agent does not get {var}"


def test_local_ai_pulls_the_models_the_agent_uses() -> None:
    entrypoint = " ".join(service("ollama-pull")["entrypoint"])
    assert [v for v, _, _ in interpolated(entrypoint)] == ["OUTDIAL_LLM_MODEL"]
    env = service_env("speaches-models")
    assert [v for v, _, _ in interpolated(env["STT_MODEL"])] == ["OUTDIAL_STT_MODEL"]
    assert [v for v, _, _ in interpolated(env["TTS_MODEL"])] == ["OUTDIAL_TTS_MODEL"]
    # The commented local-ai block of .env.example names these services.
    block = ENV_EXAMPLE.read_text().split("local-ai profile", 1)[1]
    commented = dict(
        line[2:].split("=", 1) for line in block.splitlines() if re.match(r"# [A-Z_]+=", line)
    )
    assert commented.keys() == AGENT_ENV
    assert urlsplit(commented["OUTDIAL_LLM_BASE_URL"]).hostname == "ollama"
    assert urlsplit(commented["OUTDIAL_STT_BASE_URL"]).hostname == "speaches"
    assert urlsplit(commented["OUTDIAL_TTS_BASE_URL"]).hostname == "speaches"


# ------------------------------------------------------------------------------------------
# .env.example and deploy/init-env.sh
# ------------------------------------------------------------------------------------------


def test_env_example_is_plain_dotenv() -> None:
    seen: set[str] = set()
    for number, line in enumerate(ENV_EXAMPLE.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"line {number}: {line!r}"
        assert key not in seen, f"line {number}: {key} appears twice"
        seen.add(key)
        # Compose v1 keeps quotes and trailing comments as part of the value, v2 strips them.
        assert not re.search(r"['\"]|\s#|\$", value), f"line {number}: keep values bare"
    assert seen == set(env_example())


def test_env_example_has_every_setting_and_agent_variable() -> None:
    missing = (set(settings_aliases()) | AGENT_ENV) - set(env_example())
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_env_example_secrets_are_empty_placeholders() -> None:
    example = env_example()
    for var in SECRETS:
        assert example[var] == "", f"{var} must ship empty"
    text = ENV_EXAMPLE.read_text()
    assert "openssl rand -hex 32" in text


def test_env_example_values_are_valid_and_match_the_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aliases = settings_aliases()
    for var in list(os.environ):
        if var in aliases:
            monkeypatch.delenv(var)
    for var, value in env_example().items():
        if var in aliases:
            monkeypatch.setenv(var, value or "")
    configured = Settings(_env_file=None)
    defaults = Settings.model_construct()
    for var, field in aliases.items():
        if var in COMPOSE_ADDRESSES | SECRETS:
            continue
        value, default = getattr(configured, field), getattr(defaults, field)
        if default is None and value == "":
            continue  # an empty optional setting means "not set" (e.g. no default trunk)
        assert value == default, (
            f".env.example documents {var}={env_example()[var]!r}, but the default is {default!r}"
        )


def test_init_env_fills_only_the_empty_secrets(tmp_path: Path) -> None:
    if not shutil.which("bash"):
        pytest.fail("bash is required to run deploy/init-env.sh")
    (tmp_path / "deploy").mkdir()
    shutil.copy(DEPLOY / "init-env.sh", tmp_path / "deploy" / "init-env.sh")
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env.example")
    script = ["bash", str(tmp_path / "deploy" / "init-env.sh")]
    subprocess.run(script, check=True, capture_output=True, timeout=30)
    first = dict(dotenv_values(tmp_path / ".env"))
    subprocess.run(script, check=True, capture_output=True, timeout=30)
    assert dict(dotenv_values(tmp_path / ".env")) == first, "a second run changed .env"
    for var, value in env_example().items():
        if var in GENERATED_SECRETS:
            assert re.fullmatch(r"[0-9a-f]{64}", first[var] or ""), var
        else:
            assert first[var] == value, var
    guarded = {var for var, op, _ in compose_interpolations() if op == ":?"}
    assert all(first.get(var) for var in guarded), "init-env.sh leaves a guarded variable empty"


# ------------------------------------------------------------------------------------------
# Kubernetes
# ------------------------------------------------------------------------------------------


@cache
def kustomization() -> dict[str, Any]:
    return load_yaml(K8S / "kustomization.yaml")


def probe_target(container: dict[str, Any], probe: str) -> tuple[int, str]:
    get = container[probe]["httpGet"]
    port = get["port"]
    if isinstance(port, str):
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert port in named, f"probe port {port!r} is not a named container port"
        port = named[port]
    return int(port), get["path"]


def test_kustomization_lists_every_manifest() -> None:
    listed = set(kustomization()["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    (generator,) = kustomization()["secretGenerator"]
    assert generator["name"] == "outdial" and generator["envs"] == ["secret.env"]
    assert (K8S / "secret.env.example").is_file()
    assert "secret.env" in (K8S / ".gitignore").read_text().split()
    assert [image["name"] for image in kustomization()["images"]] == ["outdial"]
    for doc in k8s_documents():
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), doc


def test_k8s_deployments_run_the_image_with_the_right_command() -> None:
    for role, command in OUTDIAL_COMMANDS.items():
        container = k8s_container(role)
        assert container["image"] == "outdial"
        assert (container.get("command", []) + container.get("args", []))[: len(command)] == (
            command
        ), role
        spec = k8s_object("Deployment", f"outdial-{role}")["spec"]
        assert (
            spec["selector"]["matchLabels"].items()
            <= spec["template"]["metadata"]["labels"].items()
        ), role
        assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True, role


def test_k8s_resources_are_set() -> None:
    for role in OUTDIAL_COMMANDS:
        resources = k8s_container(role)["resources"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[kind]), f"{role} {kind}"


def test_k8s_api_probes_are_routes() -> None:
    container = k8s_container("api")
    command = container["command"]
    port = int(command[command.index("--port") + 1])
    assert port in {p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe_port, path = probe_target(container, probe)
        assert probe_port == port, probe
        assert is_route(path, "GET"), f"{probe}: GET {path} is not a route of api.app"
    assert probe_target(container, "livenessProbe")[1] == "/healthz"
    assert probe_target(container, "readinessProbe")[1] == "/readyz"


def test_k8s_worker_and_agent_probes() -> None:
    metrics_port = int(k8s_configmap()["OUTDIAL_WORKER_METRICS_PORT"])
    worker = k8s_container("worker")
    for probe in ("livenessProbe", "readinessProbe"):
        assert probe_target(worker, probe) == (metrics_port, "/metrics"), probe
    annotations = k8s_object("Deployment", "outdial-worker")["spec"]["template"]["metadata"]
    assert annotations["annotations"]["prometheus.io/port"] == str(metrics_port)
    agent = k8s_container("agent")
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert probe_target(agent, probe) == (AGENT_HEALTH_PORT, "/"), probe


def test_k8s_env_names_are_settings_or_agent_variables() -> None:
    known = set(settings_aliases()) | AGENT_ENV
    for name in k8s_configmap():
        assert name in known, f"ConfigMap key {name} is not a setting (typo?)"
    for name in k8s_secret_keys():
        assert name in known, f"secret.env.example key {name} is not a setting (typo?)"
    overlap = set(k8s_configmap()) & set(k8s_secret_keys())
    assert not overlap, f"both in ConfigMap and Secret: {overlap}"
    for name in SECRETS:
        assert name not in k8s_configmap(), f"{name} belongs in the Secret"
    for var in k8s_configmap().values():
        assert isinstance(var, str), "ConfigMap values must be strings"


def test_k8s_provides_the_required_settings() -> None:
    provided = set(k8s_configmap()) | set(k8s_secret_keys())
    missing = required_settings() - provided
    assert not missing, f"deploy/k8s does not set {sorted(missing)}"
    for role in ("api", "worker"):
        refs = k8s_container(role)["envFrom"]
        assert {"configMapRef": {"name": "outdial"}} in refs, role
        assert {"secretRef": {"name": "outdial"}} in refs, role
    agent = k8s_container("agent")
    assert agent["envFrom"] == [{"configMapRef": {"name": "outdial"}}]
    from_secret = {}
    for item in agent["env"]:
        ref = item["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "outdial" and ref["key"] in k8s_secret_keys(), item
        from_secret[item["name"]] = ref["key"]
    agent_env = set(k8s_configmap()) | set(from_secret)
    assert not (AGENT_NEEDS | AGENT_ENV) - agent_env


def test_k8s_config_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    aliases = settings_aliases()
    for var in list(os.environ):
        if var in aliases:
            monkeypatch.delenv(var)
    for var, value in k8s_configmap().items():
        if var in aliases:
            monkeypatch.setenv(var, value)
    settings = Settings(_env_file=None)
    assert urlsplit(settings.public_url).hostname == "outdial-api.outdial.svc.cluster.local"


def test_k8s_agent_grace_period_covers_a_call() -> None:
    max_call = int(k8s_configmap()["OUTDIAL_MAX_DURATION_SECONDS"])
    spec = k8s_object("Deployment", "outdial-agent")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] >= max_call + 30


def test_k8s_service_and_hpa_target_the_api() -> None:
    service_ = k8s_object("Service", "outdial-api")
    pod_labels = k8s_object("Deployment", "outdial-api")["spec"]["template"]["metadata"]["labels"]
    assert service_["spec"]["selector"].items() <= pod_labels.items()
    named = {p["name"] for p in k8s_container("api")["ports"]}
    assert all(p["targetPort"] in named for p in service_["spec"]["ports"])
    public_url = urlsplit(k8s_configmap()["OUTDIAL_PUBLIC_URL"])
    assert public_url.hostname.split(".")[:2] == ["outdial-api", kustomization()["namespace"]]
    assert public_url.port == service_["spec"]["ports"][0]["port"]
    hpa = k8s_object("HorizontalPodAutoscaler", "outdial-api")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "outdial-api",
    }
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]


# ------------------------------------------------------------------------------------------
# Dockerfile
# ------------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    result = []
    for line in lines:
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_dockerfile_caches_dependencies_and_runs_as_a_user() -> None:
    steps = dockerfile_instructions()
    stages = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    assert len(stages) >= 2, "multi-stage build expected"
    build, runtime = steps[stages[0] : stages[-1]], steps[stages[-1] :]

    def index(stage: list[tuple[str, str]], keyword: str, needle: str) -> int:
        for i, (kw, rest) in enumerate(stage):
            if kw == keyword and needle in rest:
                return i
        raise AssertionError(f"no {keyword} ... {needle} in the Dockerfile stage")

    # pyproject alone, the dependency install, then the source.
    assert index(build, "COPY", "pyproject.toml") < index(build, "RUN", "pip install -r")
    packages = load_pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in packages:
        name = package.rstrip("*")
        assert index(build, "RUN", "pip install -r") < index(build, "COPY", f"{name} ./{name}")
        assert index(build, "COPY", f"{name} ./{name}") < index(build, "RUN", "--no-deps .")
    user = index(runtime, "USER", "")
    assert runtime[user][1] not in ("root", "0")
    assert user < index(runtime, "RUN", "outdial agent download-files")
    assert runtime[-1][0] == "CMD" and "outdial" in runtime[-1][1]


def test_dockerignore_sends_only_what_is_copied() -> None:
    lines = [
        line
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "*", "start from nothing, then allow what the Dockerfile copies"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        rest.split()[0]
        for keyword, rest in dockerfile_instructions()
        if keyword == "COPY" and not rest.startswith("--from")
    }
    assert copied <= allowed | {"."}


def load_pyproject() -> dict[str, Any]:
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


# ------------------------------------------------------------------------------------------
# docker-compose config (the one check that needs a binary)
# ------------------------------------------------------------------------------------------


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


def test_compose_config_validates(tmp_path: Path) -> None:
    command = compose_command()
    if command is None:
        pytest.skip("neither docker-compose nor `docker compose` is installed")
    shutil.copy(COMPOSE_FILE, tmp_path / "docker-compose.yml")
    shutil.copytree(DEPLOY, tmp_path / "deploy")
    # Only PATH and HOME: variables of this shell must not stand in for .env.
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}

    def config(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *args, "config", "-q"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    # As shipped the secrets are empty: compose must refuse, naming what to set.
    shutil.copy(ENV_EXAMPLE, tmp_path / ".env")
    refused = config()
    assert refused.returncode != 0, "compose accepted empty secrets"
    assert "in .env" in refused.stdout + refused.stderr

    filled = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.partition("=")[0] in SECRETS:
            line = line.partition("=")[0] + "=" + "0123456789abcdef" * 4
        filled.append(line)
    (tmp_path / ".env").write_text("\n".join(filled) + "\n")
    for args in ((), ("--profile", "local-ai")):
        result = config(*args)
        assert result.returncode == 0, f"config {args}: {result.stdout}{result.stderr}"
