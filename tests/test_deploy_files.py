"""Static checks of .env.example, deploy/init-env.sh, deploy/sip-entrypoint.sh, the
Kubernetes manifests, the Dockerfile and the quick starts against the code: every setting
provided and valid, secrets left empty, probes that are real routes, exactly one public
address reaching LiveKit SIP, quick starts that set every variable they use."""

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

from agent_runtime.model_keys import startup_error
from agent_runtime.settings import WorkerSettings
from api.settings import Settings
from tests.deploy_files import (
    AGENT_ENV,
    AGENT_HEALTH_PORT,
    AGENT_NEEDS,
    COMPOSE_ADDRESSES,
    DEPLOY,
    ENV_EXAMPLE,
    GENERATED_SECRETS,
    K8S,
    OUTDIAL_COMMANDS,
    ROOT,
    SECRETS,
    compose,
    compose_interpolations,
    env_example,
    interpolated,
    is_route,
    k8s_configmap,
    k8s_container,
    k8s_documents,
    k8s_object,
    k8s_secret_keys,
    load_yaml,
    required_settings,
    settings_aliases,
)

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


def test_k8s_agent_refuses_to_start_until_the_model_key_is_filled_in() -> None:
    # The agent's environment as deploy/k8s builds it, with secret.env copied unchanged.
    env = {k: v for k, v in {**k8s_configmap(), **k8s_secret_keys()}.items() if v}
    refusal = startup_error(WorkerSettings.from_env(env), env)
    assert refusal and "OPENAI_API_KEY" in refusal
    env["OPENAI_API_KEY"] = "sk-filled-in"
    assert startup_error(WorkerSettings.from_env(env), env) is None


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

    # The lock alone, the dependency install from it (hashes checked), then the source,
    # built with the locked backend.
    lock_install = index(
        build, "RUN", "pip install --require-hashes --only-binary :all: -r requirements/server.txt"
    )
    assert index(build, "COPY", "requirements/server.txt") < lock_install
    assert lock_install < index(build, "COPY", "pyproject.toml")
    packages = load_pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in packages:
        name = package.rstrip("*")
        assert lock_install < index(build, "COPY", f"{name} ./{name}")
        assert index(build, "COPY", f"{name} ./{name}") < index(
            build, "RUN", "--no-deps --no-build-isolation ."
        )
    user = index(runtime, "USER", "")
    assert runtime[user][1] not in ("root", "0")
    assert user < index(runtime, "RUN", "outdial agent download-files")
    assert runtime[-1][0] == "CMD" and "outdial" in runtime[-1][1]


def test_the_package_ships_the_store_lua_scripts() -> None:
    """The image installs the package (`pip install .`): files that are not Python reach it
    only through package-data, and the store reads its scripts from the package."""
    package_data = load_pyproject()["tool"]["setuptools"]["package-data"]["api.store"]
    store = ROOT / "api" / "store"
    shipped = {path for pattern in package_data for path in store.glob(pattern)}
    lua = set(store.rglob("*.lua"))
    assert lua and lua <= shipped


def test_dockerfile_base_is_an_exact_python_and_debian_release() -> None:
    """Both stages start from one exact tag whose Python minor is the one the lock targets."""
    text = (DEPLOY / "Dockerfile").read_text()
    (image,) = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    exact = r"python:(\d+\.\d+)\.\d+-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?"
    match = re.fullmatch(exact, image)
    assert match, f"{image}: not an exact python:X.Y.Z-slim-<debian release> tag"
    froms = [rest for keyword, rest in dockerfile_instructions() if keyword == "FROM"]
    assert len(froms) >= 2 and all(rest.startswith("${PYTHON_IMAGE} ") for rest in froms)
    lock_script = (ROOT / "scripts" / "lock").read_text()
    assert f"--python-version {match[1]} " in lock_script


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
# deploy/sip-entrypoint.sh: exactly one public-address line reaches livekit-sip
# ------------------------------------------------------------------------------------------


def run_sip_entrypoint(
    tmp_path: Path, public_ip: str, config: Path = DEPLOY / "sip.yaml"
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """Runs the entrypoint with a stand-in `livekit-sip` that records the config body it
    was given; returns the run and that config (None when livekit-sip never started)."""
    if not shutil.which("bash"):
        pytest.fail("bash is required to run deploy/sip-entrypoint.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    recorded = tmp_path / "body.yaml"
    recorded.unlink(missing_ok=True)
    stub = bin_dir / "livekit-sip"
    stub.write_text('#!/bin/sh\nprintf "%s" "$SIP_CONFIG_BODY" > "$RECORD"\n')
    stub.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "SIP_CONFIG_FILE": str(config),
        "OUTDIAL_SIP_PUBLIC_IP": public_ip,
        "RECORD": str(recorded),
    }
    result = subprocess.run(
        ["bash", str(DEPLOY / "sip-entrypoint.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    body = yaml.safe_load(recorded.read_text()) if recorded.exists() else None
    return result, body


def test_sip_entrypoint_uses_stun_unless_the_public_ip_is_set(tmp_path: Path) -> None:
    shipped = load_yaml(DEPLOY / "sip.yaml")
    # livekit/sip refuses use_external_ip and nat_1_to_1_ip together: the file sets neither
    assert not {"use_external_ip", "nat_1_to_1_ip"} & set(shipped)

    result, body = run_sip_entrypoint(tmp_path, "")
    assert result.returncode == 0, result.stderr
    assert body == {**shipped, "use_external_ip": True}

    result, body = run_sip_entrypoint(tmp_path, "203.0.113.10")
    assert result.returncode == 0, result.stderr
    assert body == {**shipped, "nat_1_to_1_ip": "203.0.113.10"}


@pytest.mark.parametrize("bad", ["203.0.113", "300.1.1.1", "1.2.3.4.5", "a.b.c.d", "1.2.3.4 "])
def test_sip_entrypoint_rejects_a_malformed_public_ip(tmp_path: Path, bad: str) -> None:
    result, body = run_sip_entrypoint(tmp_path, bad)
    assert result.returncode == 64 and body is None
    assert "OUTDIAL_SIP_PUBLIC_IP" in result.stderr


def test_sip_entrypoint_refuses_a_config_that_sets_the_address_itself(tmp_path: Path) -> None:
    config = tmp_path / "sip.yaml"
    config.write_text((DEPLOY / "sip.yaml").read_text() + "use_external_ip: true\n")
    result, body = run_sip_entrypoint(tmp_path, "", config)
    assert result.returncode == 64 and body is None


def test_compose_runs_the_sip_entrypoint_on_the_mounted_config() -> None:
    sip = compose()["services"]["sip"]
    # container path -> host path, of "HOST:CONTAINER[:ro]" bind mounts
    mounts = {target: source for source, target, *_ in (v.split(":") for v in sip["volumes"])}
    script = sip["entrypoint"][-1]
    assert mounts[script] == "./deploy/sip-entrypoint.sh"
    # the script's default config path is where the image's own entrypoint reads it
    default = re.search(
        r'config_file="\$\{SIP_CONFIG_FILE:-([^}]+)\}"', (DEPLOY / "sip-entrypoint.sh").read_text()
    )
    assert default and mounts[default.group(1)] == "./deploy/sip.yaml"
    assert [v for v, _, _ in interpolated(sip["environment"]["OUTDIAL_SIP_PUBLIC_IP"])] == [
        "OUTDIAL_SIP_PUBLIC_IP"
    ]
    assert env_example()["OUTDIAL_SIP_PUBLIC_IP"] == "", "STUN by default; set it per host"


# ------------------------------------------------------------------------------------------
# Documentation that operators copy from
# ------------------------------------------------------------------------------------------

DOCS_DEPLOY = ROOT / "docs" / "deploy.md"
ASSIGNMENT = re.compile(r"(?:^|[;&|(\s])(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=")
EXPANSION = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def bash_blocks(markdown: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", markdown, flags=re.DOTALL)


def unset_variables(blocks: list[str]) -> list[str]:
    """Shell variables the blocks expand before any line of them assigns one."""
    assigned: set[str] = set()
    unset = []
    for line in "\n".join(blocks).splitlines():
        code = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        assigned |= set(ASSIGNMENT.findall(code))
        unset += [name for name in EXPANSION.findall(code) if name not in assigned]
    return unset


def test_unset_variable_detection() -> None:
    assert unset_variables(['curl -H "$TOKEN"']) == ["TOKEN"]
    assert unset_variables(["TOKEN=$(cat t)", 'curl -H "$TOKEN"']) == []
    assert unset_variables(["WS=a; KEY=b", "echo ${WS} $KEY # $NOT_CODE"]) == []


@pytest.mark.parametrize(
    ("path", "start", "end"),
    [
        ("README.md", "# Outdial", "## How it works"),
        ("docs/deploy.md", "## Quick start", "## Configuration"),
    ],
)
def test_quick_starts_set_every_variable_they_use(path: str, start: str, end: str) -> None:
    text = (ROOT / path).read_text()
    section = text[text.index(start) : text.index(end)]
    blocks = bash_blocks(section)
    assert blocks, f"{path}: no bash block in the quick start"
    assert unset_variables(blocks) == [], f"{path}: the quick start uses unset variables"
    # the one step nobody can script: the model key (or the local-ai profile)
    assert "OPENAI_API_KEY" in section and "local-ai" in section, path


def test_cited_test_files_exist() -> None:
    cited = set()
    files = [
        ROOT / "docker-compose.yml",
        ENV_EXAMPLE,
        ROOT / "README.md",
        ROOT / "docs" / "deploy.md",
    ]
    files += [p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in {".yaml", ".sh", ""}]
    for path in files:
        cited |= set(re.findall(r"tests/[\w/]+\.py", path.read_text(errors="replace")))
    missing = sorted(c for c in cited if not (ROOT / c).is_file())
    assert not missing, f"deployment files cite tests that do not exist: {missing}"
