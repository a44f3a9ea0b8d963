"""Static checks of docker-compose.yml against the code and against what LiveKit needs to
carry a call: one LiveKit key pair everywhere; SIP on the host's network, reaching Redis and
LiveKit on loopback; nothing of Outdial waiting for SIP's health; nothing published beyond
loopback; exact image tags; media ports and the capacity docs/deploy.md states computed from
the same configs; webhook and probe paths that are real routes; every required setting
provided. No Docker engine is needed. The structural checks run on the YAML as written and,
when a compose binary is installed, on what `docker-compose config` resolves from it."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from agent_runtime.model_keys import startup_error
from agent_runtime.settings import WorkerSettings
from api.settings import Settings
from tests.deploy_files import (
    AGENT_ENV,
    AGENT_HEALTH_PORT,
    AGENT_NEEDS,
    CORE_SERVICES,
    DEPLOY,
    ENV_EXAMPLE,
    LOCAL_AI_SERVICES,
    LOCAL_URL,
    OUTDIAL_COMMANDS,
    ROOT,
    SIP_RTP_DRAIN_SECONDS,
    THIRD_PARTY_IMAGES,
    compose,
    compose_command,
    compose_interpolations,
    depends_on,
    env_example,
    env_files,
    filled_env_text,
    interpolated,
    is_route,
    livekit_config,
    port_bindings,
    required_settings,
    resolved_compose,
    run_compose_config,
    service,
    service_env,
    sip_config,
)

DOCS = ROOT / "docs" / "deploy.md"
LOOPBACK = "127.0.0.1"


def test_route_lookup_tells_routes_from_non_routes() -> None:
    assert is_route("/healthz", "GET")
    assert not is_route("/healthz", "POST")
    assert not is_route("/no-such-route-here", "GET")


# ------------------------------------------------------------------------------------------
# Compose: services, credentials, Redis, webhook, health, order
# ------------------------------------------------------------------------------------------


def container_ports(name: str, proto: str) -> set[str]:
    ports = set()
    for _, host, container, protocol in port_bindings(service(name)):
        assert host == container, f"{name}: publish {container} on the same host port"
        if protocol == proto:
            ports.add(container)
    return ports


def address(value: str) -> tuple[str | None, int | None]:
    """(host, port) of a URL or a bare host:port."""
    parts = urlsplit(value if "://" in value else f"//{value}")
    return parts.hostname, parts.port


def no_compose() -> None:
    """Without a compose binary the resolved-config checks cannot run: a skip on a laptop,
    a failure where they must run (`.ci/run` sets OUTDIAL_REQUIRE_COMPOSE)."""
    message = "neither docker-compose nor `docker compose` is installed"
    if os.environ.get("OUTDIAL_REQUIRE_COMPOSE"):
        pytest.fail(message + " (OUTDIAL_REQUIRE_COMPOSE is set)")
    pytest.skip(message)


# The structural checks run on the file as written and on what compose resolves from it.
SOURCES = ["docker-compose.yml", "docker-compose config"]


def compose_source(source: str) -> dict[str, Any]:
    if source == "docker-compose.yml":
        return compose()
    resolved = resolved_compose()
    if resolved is None:
        no_compose()
    return resolved


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


# ------------------------------------------------------------------------------------------
# SIP on the host's network (livekit/sip README: "The container must be run with host
# networking enabled"); Redis and LiveKit reached on loopback; nothing waits for SIP
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_sip_runs_on_the_host_network(source: str) -> None:
    config = compose_source(source)
    sip = config["services"]["sip"]
    assert sip.get("network_mode") == "host", "SIP and RTP must not go through Docker's NAT"
    # a host-networked service has no ports to publish and joins no compose network
    assert not sip.get("ports") and not sip.get("networks")


@pytest.mark.parametrize("source", SOURCES)
def test_sip_reaches_redis_and_livekit_on_loopback(source: str) -> None:
    config = compose_source(source)
    services = config["services"]
    # A host-networked service cannot resolve compose service names.
    redis_host, redis_port = address(sip_config()["redis"]["address"])
    ws_host, ws_port = address(sip_config()["ws_url"])
    assert redis_host == ws_host == LOOPBACK
    assert "--port" not in services["redis"].get("command", []), "Redis listens on 6379"
    assert (LOOPBACK, str(redis_port), "6379", "tcp") in port_bindings(services["redis"])
    assert ws_port == livekit_config()["port"]
    assert (LOOPBACK, str(ws_port), str(ws_port), "tcp") in port_bindings(services["livekit"])
    assert depends_on(services["sip"]) == {
        "redis": "service_healthy",
        "livekit": "service_healthy",
    }


def test_livekit_and_outdial_use_the_compose_redis_by_name() -> None:
    assert str(service("redis")["image"]).startswith("redis:")
    assert address(livekit_config()["redis"]["address"]) == ("redis", 6379)
    assert address(env_example()["REDIS_URL"] or "") == ("redis", 6379)
    assert depends_on(service("livekit"))["redis"] == "service_healthy"


@pytest.mark.parametrize("source", SOURCES)
def test_no_outdial_service_waits_for_sip_health(source: str) -> None:
    config = compose_source(source)
    # SIP can exit at startup (STUN failure with use_external_ip); a service_healthy
    # dependency on it would keep the API, the worker and the agent from starting at all.
    for name in OUTDIAL_COMMANDS:
        condition = depends_on(config["services"][name]).get("sip")
        assert condition in (None, "service_started"), f"{name} waits for sip: {condition}"


@pytest.mark.parametrize("source", SOURCES)
def test_only_loopback_is_published(source: str) -> None:
    config = compose_source(source)
    # Plain HTTP APIs and an unauthenticated Redis: nothing on the host's other interfaces.
    # (Docker's published ports also bypass ufw/firewalld; host-networked SIP does not.)
    published = {}
    for name, svc in config["services"].items():
        for host_ip, host, _, proto in port_bindings(svc):
            assert host_ip == LOOPBACK, f"{name} publishes {host}/{proto} on {host_ip or 'all'}"
            published[name, proto] = published.get((name, proto), set()) | {host}
    assert published == {
        ("redis", "tcp"): {"6379"},
        ("livekit", "tcp"): {str(livekit_config()["port"])},
        ("api", "tcp"): {api_port()},
    }


@pytest.mark.parametrize("source", SOURCES)
def test_images_are_pinned_exactly(source: str) -> None:
    config = compose_source(source)
    for name, repository in THIRD_PARTY_IMAGES.items():
        image = str(config["services"][name]["image"])
        if "@sha256:" in image:
            continue
        repo, _, tag = image.rpartition(":")
        assert repo == repository, f"{name}: {image}"
        # v1.13 or 7.4-alpine move with every patch release: three numbers, or a digest
        assert re.fullmatch(r"v?\d+\.\d+\.\d+(-[a-z0-9.]+)?", tag), f"{name}: {image} moves"


def test_redis_keeps_an_append_only_file_in_a_volume() -> None:
    redis = service("redis")
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    volume, _, target = redis["volumes"][0].partition(":")
    assert target == "/data" and volume in compose()["volumes"]


def test_outdial_reaches_livekit_by_its_service_name() -> None:
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
        "api": {"redis", "livekit"},
        "worker": {"redis", "livekit", "api"},
        "agent": {"livekit", "api"},
    }
    for name, needs in expected.items():
        dependencies = depends_on(service(name))
        assert set(dependencies) == needs, name
        for dependency, condition in dependencies.items():
            assert condition == "service_healthy", f"{name} -> {dependency}"
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
    assert container_ports("livekit", "tcp") == {str(livekit_config()["port"])}
    assert container_ports("api", "tcp") == {api_port()}
    sip = sip_config()
    assert f"/dev/tcp/127.0.0.1/{sip['health_port']}" in healthcheck_command("sip")[-1]
    # SIP binds its ports on the host itself: they must not collide with what compose
    # publishes there, nor with LiveKit's (7880 on loopback).
    start, end = rtp_range()
    taken = {6379, int(api_port()), livekit_config()["port"], sip["health_port"]}
    assert not {p for p in taken if start <= p <= end}
    assert sip["sip_port"] not in taken and not start <= sip["sip_port"] <= end


def test_sip_healthcheck_counts_busy_as_up() -> None:
    # livekit/sip answers 429 when CPU use is above max_cpu_utilization: it is up, and
    # LiveKit already routes new calls away from it; 503 means not started or stopping.
    probe = healthcheck_command("sip")[-1]
    codes = re.search(r"grep -qE ' \((\d+(?:\|\d+)*)\) '", probe)
    assert codes, probe
    assert set(codes.group(1).split("|")) == {"200", "429"}


# ------------------------------------------------------------------------------------------
# Media ports: the configs, and the capacity docs/deploy.md states from them
# ------------------------------------------------------------------------------------------


def rtp_range() -> tuple[int, int]:
    start, _, end = str(sip_config()["rtp_port"]).partition("-")
    return int(start), int(end)


def even_ports(start: int, end: int) -> int:
    """Ports livekit/sip can bind: even ones only, both ends included
    (media-sdk rtp/listen.go bindEvenRange)."""
    low, high = (start + 1) & ~1, end & ~1
    return max(0, (high - low) // 2 + 1)


def test_even_port_count_matches_livekit_sip() -> None:
    assert even_ports(10000, 10100) == 51
    assert even_ports(10001, 10004) == 2
    assert even_ports(10000, 20000) == 5001


def test_livekit_uses_one_multiplexed_udp_port() -> None:
    rtc = livekit_config()["rtc"]
    # port_range_* would win over udp_port (mediatransportutil rtcconfig/webrtc_config.go)
    assert not {"port_range_start", "port_range_end"} & set(rtc)
    assert isinstance(rtc["udp_port"], int)
    assert rtc["use_external_ip"] is False, "its peers are on this host; no STUN at startup"


def test_sip_rtp_range_and_drain_are_what_the_docs_count() -> None:
    sip = sip_config()
    assert not {"rtp_draining_idle_timeout", "rtp_draining_duration"} & set(sip), (
        "the docs count SIP's default 30 s drain"
    )
    start, end = rtp_range()
    assert 1024 < start < end < 32768, "below Linux's ephemeral ports (32768-60999)"
    # the capacity the docs promise for 10 call attempts a second must be real
    assert even_ports(start, end) - SIP_RTP_DRAIN_SECONDS * 10 >= 1000


def test_docs_media_arithmetic_matches_the_configs() -> None:
    text = DOCS.read_text()
    start, end = rtp_range()
    ports = even_ports(start, end)
    assert f"`rtp_port: {start}-{end}`" in text
    stated = re.findall(r"(\d+) even ports", text)
    assert stated and set(stated) == {str(ports)}, stated
    # "P - D x call attempts per second", written with the minus and times signs
    per_rate = re.search(r"(\d+) \u2212 (\d+) \u00d7 call attempts per second", text)
    assert per_rate, "docs/deploy.md states the SIP capacity formula"
    assert per_rate.groups() == (str(ports), str(SIP_RTP_DRAIN_SECONDS))
    examples = re.findall(r"(\d+) at (\d+) call attempts per second", text)
    assert examples, "docs/deploy.md gives a worked example"
    for calls, rate in examples:
        assert int(calls) == ports - SIP_RTP_DRAIN_SECONDS * int(rate), (calls, rate)
    udp_port = livekit_config()["rtc"]["udp_port"]
    assert f"`rtc.udp_port: {udp_port}`" in text
    # the ranges this stack no longer uses must not linger in the docs
    assert "50000-50100" not in text and "10000-10100" not in text


# ------------------------------------------------------------------------------------------
# Shutdown, settings and the agent's variables
# ------------------------------------------------------------------------------------------


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


def local_ai_block() -> dict[str, str]:
    """The commented local-ai block at the end of .env.example, as variables."""
    block = ENV_EXAMPLE.read_text().split("local-ai profile", 1)[1]
    return dict(
        line[2:].split("=", 1) for line in block.splitlines() if re.match(r"# [A-Z_]+=", line)
    )


def test_the_agent_refuses_the_shipped_env_until_a_model_key_is_set() -> None:
    # .env.example as shipped points the agent at OpenAI with an empty key: the agent must
    # refuse to start (naming the variable), not register and answer calls with silence.
    shipped = {k: v for k, v in env_example().items() if v}
    refusal = startup_error(WorkerSettings.from_env(shipped), shipped)
    assert refusal and "OPENAI_API_KEY" in refusal
    with_key = {**shipped, "OPENAI_API_KEY": "sk-set-in-env"}
    assert startup_error(WorkerSettings.from_env(with_key), with_key) is None
    # the local-ai block works as documented (its servers ignore the key)...
    local = {**shipped, **local_ai_block()}
    assert startup_error(WorkerSettings.from_env(local), local) is None
    # ...and would still start with the key line left empty: its endpoints are local
    local["OPENAI_API_KEY"] = ""
    assert startup_error(WorkerSettings.from_env(local), local) is None


def test_local_ai_pulls_the_models_the_agent_uses() -> None:
    entrypoint = " ".join(service("ollama-pull")["entrypoint"])
    assert [v for v, _, _ in interpolated(entrypoint)] == ["OUTDIAL_LLM_MODEL"]
    env = service_env("speaches-models")
    assert [v for v, _, _ in interpolated(env["STT_MODEL"])] == ["OUTDIAL_STT_MODEL"]
    assert [v for v, _, _ in interpolated(env["TTS_MODEL"])] == ["OUTDIAL_TTS_MODEL"]
    # The commented local-ai block of .env.example names these services.
    commented = local_ai_block()
    assert commented.keys() == AGENT_ENV
    assert urlsplit(commented["OUTDIAL_LLM_BASE_URL"]).hostname == "ollama"
    assert urlsplit(commented["OUTDIAL_STT_BASE_URL"]).hostname == "speaches"
    assert urlsplit(commented["OUTDIAL_TTS_BASE_URL"]).hostname == "speaches"


# ------------------------------------------------------------------------------------------
# docker-compose config (the checks that need a binary)
# ------------------------------------------------------------------------------------------


def test_compose_config_validates(tmp_path: Path) -> None:
    if compose_command() is None:
        no_compose()
    # As shipped the secrets are empty: compose must refuse, naming what to set.
    refused = run_compose_config(tmp_path, ENV_EXAMPLE.read_text())
    assert refused.returncode != 0, "compose accepted empty secrets"
    assert "in .env" in refused.stdout + refused.stderr
    for args in ((), ("--profile", "local-ai")):
        result = run_compose_config(tmp_path, filled_env_text(), *args)
        assert result.returncode == 0, f"config {args}: {result.stdout}{result.stderr}"


def test_the_public_ip_reaches_sip(tmp_path: Path) -> None:
    if compose_command() is None:
        no_compose()
    import yaml

    text = filled_env_text().replace(
        "OUTDIAL_SIP_PUBLIC_IP=\n", "OUTDIAL_SIP_PUBLIC_IP=203.0.113.10\n"
    )
    result = run_compose_config(tmp_path, text)
    assert result.returncode == 0, result.stdout + result.stderr
    sip = yaml.safe_load(result.stdout)["services"]["sip"]
    environment = sip["environment"]
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    assert environment["OUTDIAL_SIP_PUBLIC_IP"] == "203.0.113.10"
    assert sip["entrypoint"][-1] == "/sip/entrypoint.sh"
