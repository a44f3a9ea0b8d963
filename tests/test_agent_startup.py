"""A worker whose hosted models have no key refuses to start, naming the variable to set.

Without the check the worker registers, takes calls, and the callee hears nobody. These
tests pin which configurations start (a key, or an endpoint on the local network) and which
refuse, and that `python -m agent_runtime start` exits before it ever contacts LiveKit. A
variable that does not parse stops the worker the same way: one line naming it, no traceback.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent_runtime.model_keys import (
    PROVIDER_KEY_ENV,
    is_local_endpoint,
    missing_model_keys,
    startup_error,
)
from agent_runtime.settings import WorkerSettings, environment_error

ROOT = Path(__file__).resolve().parent.parent


def missing(env: dict[str, str]) -> dict[str, tuple[str, ...]]:
    settings = WorkerSettings.from_env(env)
    return {m.stage: m.variables for m in missing_model_keys(settings, env)}


def test_hosted_openai_without_a_key_is_refused_for_every_stage() -> None:
    assert missing({}) == {
        "LLM": ("OPENAI_API_KEY", "OUTDIAL_LLM_API_KEY"),
        "STT": ("OPENAI_API_KEY", "OUTDIAL_STT_API_KEY"),
        "TTS": ("OPENAI_API_KEY", "OUTDIAL_TTS_API_KEY"),
    }
    # an explicit OpenAI URL is as hosted as the plugin's default one
    hosted = {f"OUTDIAL_{s}_BASE_URL": "https://api.openai.com/v1" for s in ("LLM", "STT", "TTS")}
    assert set(missing(hosted)) == {"LLM", "STT", "TTS"}


def test_a_key_satisfies_its_stages() -> None:
    assert missing({"OPENAI_API_KEY": "sk-x"}) == {}
    assert set(missing({"OUTDIAL_LLM_API_KEY": "sk-x"})) == {"STT", "TTS"}


def test_local_endpoints_need_no_key() -> None:
    env = {
        "OUTDIAL_LLM_BASE_URL": "http://ollama:11434/v1",
        "OUTDIAL_STT_BASE_URL": "http://speaches:8000/v1",
        "OUTDIAL_TTS_BASE_URL": "http://127.0.0.1:8000/v1",
    }
    assert missing(env) == {}
    env["OUTDIAL_TTS_BASE_URL"] = "https://api.groq.com/openai/v1"
    assert set(missing(env)) == {"TTS"}


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://ollama:11434/v1", True),
        ("http://localhost:8000/v1", True),
        ("http://10.0.0.7:8000/v1", True),
        ("http://192.168.1.20/v1", True),
        ("http://[::1]:8000/v1", True),
        ("http://host.docker.internal:8000/v1", True),
        ("http://speaches.outdial.svc:8000/v1", True),
        ("https://api.openai.com/v1", False),
        ("https://llm.example.com/v1", False),
        ("http://8.8.8.8/v1", False),
        ("", False),
        (None, False),
    ],
)
def test_which_endpoints_are_local(url: str | None, local: bool) -> None:
    assert is_local_endpoint(url) is local


def test_other_providers_need_their_plugins_variable() -> None:
    env = {"OPENAI_API_KEY": "sk-x", "OUTDIAL_STT_PROVIDER": "deepgram"}
    # OPENAI_API_KEY is never passed to another provider, so it does not count
    assert missing(env) == {"STT": ("DEEPGRAM_API_KEY", "OUTDIAL_STT_API_KEY")}
    assert missing({**env, "DEEPGRAM_API_KEY": "dg"}) == {}
    assert missing({**env, "OUTDIAL_STT_API_KEY": "dg"}) == {}


def test_every_provider_has_a_known_key_variable() -> None:
    from agent_runtime.providers import PROVIDERS

    assert {name for _, name in PROVIDERS} == set(PROVIDER_KEY_ENV)


def test_the_refusal_names_the_variable_and_the_way_out() -> None:
    message = startup_error(WorkerSettings.from_env({}), {})
    assert message is not None
    assert "OPENAI_API_KEY" in message and "refusing to start" in message
    assert startup_error(WorkerSettings.from_env({"OPENAI_API_KEY": "k"}), {}) is None


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("command", ["start", "dev"])
def test_the_worker_exits_before_contacting_livekit(command: str, tmp_path: Path) -> None:
    # Only what the process needs: no key may leak in from this shell.
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LIVEKIT_URL": f"ws://127.0.0.1:{closed_port()}",
        "LIVEKIT_API_KEY": "k",
        "LIVEKIT_API_SECRET": "s" * 32,
    }
    result = subprocess.run(
        [sys.executable, "-m", "agent_runtime", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refusing to start" in result.stderr
    assert "OPENAI_API_KEY" in result.stderr


@pytest.mark.parametrize(
    "entry_point",
    [
        [sys.executable, "-m", "agent_runtime"],
        # the console script the image runs (`outdial agent start`)
        [str(Path(sys.executable).with_name("outdial")), "agent"],
    ],
    ids=["python-m-agent_runtime", "outdial-agent"],
)
def test_a_bad_variable_is_named_in_one_line(entry_point: list[str], tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LIVEKIT_URL": f"ws://127.0.0.1:{closed_port()}",
        "OPENAI_API_KEY": "sk-never-used",
        "OUTDIAL_AGENT_LOAD_THRESHOLD": "seventy percent",
        "OUTDIAL_AGENT_HEALTH_PORT": "80801",
    }
    result = subprocess.run(
        [*entry_point, "start"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert "OUTDIAL_AGENT_LOAD_THRESHOLD='seventy percent'" in result.stderr
    assert "OUTDIAL_AGENT_HEALTH_PORT='80801'" in result.stderr
    assert result.stdout == ""  # refused before the worker logged a line


def test_worker_settings_validate_each_variable() -> None:
    settings = WorkerSettings.from_env(
        {"OUTDIAL_AGENT_AMD": "on", "OUTDIAL_AGENT_NUM_IDLE_PROCESSES": "2", "LIVEKIT_URL": ""}
    )
    assert settings.use_amd is True and settings.num_idle_processes == 2
    assert settings.livekit_url == ""  # an empty variable is an unset one
    with pytest.raises(ValidationError) as bad:
        WorkerSettings.from_env({"OUTDIAL_AGENT_AMD": "maybe", "OUTDIAL_AGENT_NAME": "ok"})
    message = environment_error(bad.value)
    assert message.count("OUTDIAL_AGENT_AMD='maybe'") == 1 and "\n" not in message
    assert "OUTDIAL_AGENT_NAME" not in message


def test_a_worker_that_cannot_run_exits_1(tmp_path: Path) -> None:
    # no LIVEKIT_URL: livekit-agents' AgentServer.run refuses; a supervisor must see a failure
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "OPENAI_API_KEY": "sk-never-used"}
    env["OUTDIAL_AGENT_HEALTH_PORT"] = "0"
    result = subprocess.run(
        [sys.executable, "-m", "agent_runtime", "start"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert '"message": "worker failed"' in result.stdout
