"""Static checks of docker-compose.yml against the code: one LiveKit key pair everywhere,
one Redis for LiveKit and SIP, webhook and probe paths that are real routes, port ranges that
match, every required setting provided. No Docker engine is needed; only the
`docker-compose config` check skips when no compose binary is installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from api.settings import Settings
from tests.deploy_files import (
    AGENT_ENV,
    AGENT_HEALTH_PORT,
    AGENT_NEEDS,
    COMPOSE_FILE,
    CORE_SERVICES,
    DEPLOY,
    ENV_EXAMPLE,
    LOCAL_AI_SERVICES,
    LOCAL_URL,
    OUTDIAL_COMMANDS,
    ROOT,
    SECRETS,
    compose,
    compose_interpolations,
    env_example,
    env_files,
    interpolated,
    is_route,
    livekit_config,
    required_settings,
    service,
    service_env,
    sip_config,
)


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
