"""The agent worker's default pipeline is stated once, in code (`DEFAULT_STAGES`), and every
file that repeats it (.env.example, the Kubernetes configmap, docs/agents.md) says the same;
a worker whose default pipeline cannot work on any call refuses to start, naming the
variable: for every provider of every stage, its missing key, an unknown provider, a
provider whose plugin is not installed.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_runtime.model_keys import PROVIDER_KEY_ENV, missing_model_keys
from agent_runtime.providers import PROVIDERS, unusable_providers
from agent_runtime.settings import DEFAULT_STAGES, WorkerSettings

ROOT = Path(__file__).resolve().parent.parent
STAGES = ("LLM", "STT", "TTS")


def code_defaults() -> dict[str, str]:
    values: dict[str, str] = {}
    for stage, defaults in DEFAULT_STAGES.items():
        values[f"OUTDIAL_{stage.upper()}_PROVIDER"] = defaults.provider
        values[f"OUTDIAL_{stage.upper()}_MODEL"] = defaults.model or ""
        if defaults.voice:
            values[f"OUTDIAL_{stage.upper()}_VOICE"] = defaults.voice
    return values


def env_example_defaults() -> dict[str, str]:
    """The hosted block's values, and the providers of the commented 'defaults shown' lines
    (the local-ai block further down is an alternative, not the default)."""
    text = (ROOT / ".env.example").read_text()
    values: dict[str, str] = {}
    for name, value in re.findall(r"^(OUTDIAL_(?:LLM|STT|TTS)_(?:MODEL|VOICE))=(\S+)$", text, re.M):
        values.setdefault(name, value)
    for name, value in re.findall(r"^# (OUTDIAL_LLM_PROVIDER)=(\S+)", text, re.M):
        values.setdefault(name, value)
    return values


def docs_defaults() -> dict[str, str]:
    text = (ROOT / "docs" / "agents.md").read_text()
    pattern = r"^\| `(OUTDIAL_(?:LLM|STT|TTS)_(?:PROVIDER|MODEL|VOICE))` \| `([^`]+)` \|"
    return dict(re.findall(pattern, text, re.M))


def test_env_example_states_the_code_defaults() -> None:
    code = code_defaults()
    stated = env_example_defaults()
    assert stated == {name: code[name] for name in stated}
    assert {name for name in code if not name.endswith("_PROVIDER")} <= set(stated)
    assert stated["OUTDIAL_LLM_PROVIDER"] == code["OUTDIAL_LLM_PROVIDER"]


def test_docs_state_the_code_defaults() -> None:
    assert docs_defaults() == code_defaults()


def test_the_kubernetes_configmap_states_the_code_defaults() -> None:
    configmap = yaml.safe_load((ROOT / "deploy" / "k8s" / "configmap.yaml").read_text())
    code = code_defaults()
    stated = {name: value for name, value in configmap["data"].items() if name in code}
    assert stated == {name: code[name] for name in stated} and stated


STAGE_PROVIDERS = sorted((stage, name) for stage, name in PROVIDERS if name != "openai")


@pytest.mark.parametrize(("stage", "provider"), STAGE_PROVIDERS)
def test_every_provider_of_every_stage_needs_its_key(stage: str, provider: str) -> None:
    prefix = f"OUTDIAL_{stage.upper()}"
    env = {"OPENAI_API_KEY": "sk-x", f"{prefix}_PROVIDER": provider}

    def missing(extra: dict[str, str]) -> dict[str, tuple[str, ...]]:
        settings = WorkerSettings.from_env(env | extra)
        return {m.stage: m.variables for m in missing_model_keys(settings, env | extra)}

    assert missing({}) == {stage.upper(): (PROVIDER_KEY_ENV[provider], f"{prefix}_API_KEY")}
    assert missing({PROVIDER_KEY_ENV[provider]: "k"}) == {}
    assert missing({f"{prefix}_API_KEY": "k"}) == {}


def test_an_unknown_provider_is_refused() -> None:
    settings = WorkerSettings.from_env({"OUTDIAL_LLM_PROVIDER": "deepgram"})  # STT/TTS only
    [problem] = unusable_providers(settings)
    assert problem.startswith("OUTDIAL_LLM_PROVIDER='deepgram': no such llm provider")
    assert unusable_providers(WorkerSettings.from_env({})) == []


def test_a_provider_without_its_plugin_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Which plugins are installed depends on the machine: deepgram's is made absent here.
    find_spec = importlib.util.find_spec

    def without_deepgram(name: str, *args: Any) -> Any:
        return None if name == "livekit.plugins.deepgram" else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_deepgram)
    settings = WorkerSettings.from_env({"OUTDIAL_STT_PROVIDER": "deepgram"})
    assert unusable_providers(settings) == [
        "OUTDIAL_STT_PROVIDER='deepgram' needs its plugin: pip install 'livekit-agents[deepgram]'"
    ]


def test_the_worker_refuses_an_unknown_provider_in_one_line(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "OPENAI_API_KEY": "sk-never-used",
        "OUTDIAL_TTS_PROVIDER": "openia",
    }
    result = subprocess.run(
        [sys.executable, "-m", "agent_runtime", "start"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "OUTDIAL_TTS_PROVIDER='openia': no such tts provider" in result.stderr
