"""`outdial agent console`: the agent read from a live API, talked to in text mode.

The model is `tests/scripted_llm.py`, registered as the provider `scripted` in the
provider registry a call builds its LLM from: in the console's own process through a
`sitecustomize` on its PYTHONPATH (the end-to-end test), or in this process (the others).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from agent_runtime import CallContext, builtin_agent
from agent_runtime.console import run_console
from agent_runtime.contract import AgentConfig, ModelConfig, PipelineConfig, VoicemailConfig
from agent_runtime.providers import PROVIDERS
from api.cli.agent_console import agent_config
from api.schemas.agents import AgentOut
from api.store.agents import AgentRecord
from tests.conftest import Tenant
from tests.scripted_llm import ScriptedLLM, Step, tool_call
from tests.support import ROOT, ApiServer, free_port

SECRET_METADATA = {"crm_id": "CRM-7731-SECRET", "note": "vip-do-not-say"}
SCRIPTED = {"llm": {"provider": "scripted"}}

# Runs in the console's process: the model answers from OUTDIAL_TEST_SCRIPT (a string is a
# reply, a list is a tool call) and writes what it was shown to OUTDIAL_TEST_SEEN at exit.
SITECUSTOMIZE = """
import atexit, json, os
from agent_runtime.providers import PROVIDERS
from tests.scripted_llm import ScriptedLLM, tool_call

steps = [s if isinstance(s, str) else tool_call(s[0], **s[1])
         for s in json.loads(os.environ["OUTDIAL_TEST_SCRIPT"])]
model = ScriptedLLM(steps)
PROVIDERS[("llm", "scripted")] = lambda spec: model
atexit.register(lambda: open(os.environ["OUTDIAL_TEST_SEEN"], "w").write(model.seen_text()))
"""


async def run_cli(
    tmp_path: Path, args: list[str], stdin: str, script: list[Any], **extra: str
) -> tuple[int, str, str, str]:
    """`python -m api.cli agent console ...` as a user runs it (with the variables `extra`,
    and a config directory of its own): exit code, stdout, stderr, and what the model was
    shown."""
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    seen = tmp_path / "seen.txt"
    env = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        "OUTDIAL_TEST_SCRIPT": json.dumps(script),
        "OUTDIAL_TEST_SEEN": str(seen),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        **extra,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api.cli", "agent", "console", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=ROOT, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), 60)
    assert process.returncode is not None
    text = seen.read_text() if seen.exists() else ""
    return process.returncode, out.decode(), err.decode(), text


def credentials(api_server: ApiServer, tenant: Tenant) -> list[str]:
    return ["--api-url", api_server.url, "--workspace", tenant.id, "--key", tenant.api_key]


async def test_console_against_the_api(
    api_server: ApiServer, tenant: Tenant, tmp_path: Path
) -> None:
    agent = await tenant.create_agent(
        instructions="Remind {{firstName}} {{lastName}} of the appointment on {{day|Monday}}.",
        first_message="Hi {{firstName}}, it's the clinic.",
        pipeline=SCRIPTED,
    )
    script = ["Great, see you on Monday, Ada.", ["end_call", {"goodbye": "Goodbye Ada!"}]]
    stdin = "I'll be there.\nThat's all, bye.\nAre you still there?\n"
    args = [agent["id"], "--var", "firstName=Ada", "--metadata", json.dumps(SECRET_METADATA)]
    code, out, err, seen = await run_cli(
        tmp_path, args + credentials(api_server, tenant), stdin, script
    )

    assert code == 0, err
    lines = out.splitlines()
    assert lines[1:] == [
        "missing: lastName",
        "agent: Hi Ada, it's the clinic.",
        "you: I'll be there.",
        "agent: Great, see you on Monday, Ada.",
        "you: That's all, bye.",
        "[end_call] the call would hang up here (reason: hangup_by_agent)",
        "agent: Goodbye Ada!",
        "(call over: hangup_by_agent)",
    ]
    assert lines[0].startswith(f"Reminder ({agent['id']})")
    # the instructions were rendered as on a call; the metadata never reached the model
    assert "Remind Ada  of the appointment on Monday." in seen
    for value in [*SECRET_METADATA, *SECRET_METADATA.values()]:
        assert value not in seen


async def test_console_names_what_the_api_refused(
    api_server: ApiServer, tenant: Tenant, tmp_path: Path
) -> None:
    args = ["nosuchagent", *credentials(api_server, tenant)]
    code, out, err, _ = await run_cli(tmp_path, args, "", [])
    assert out == ""
    assert code == 2
    [line] = err.splitlines()
    assert line.startswith("outdial agent console: 404 NOT_FOUND: ")

    args = ["nosuchagent", "--api-url", api_server.url, "--workspace", tenant.id, "--key", "x"]
    code, _, err, _ = await run_cli(tmp_path, args, "", [])
    assert code == 2 and "401" in err


async def test_console_finds_the_api_as_the_cli_does(
    api_server: ApiServer, tenant: Tenant, tmp_path: Path
) -> None:
    # what `outdial login` saved: no flag, no variable needed
    login = {"api_url": api_server.url, "workspace_id": tenant.id, "api_key": tenant.api_key}
    (tmp_path / "config" / "outdial").mkdir(parents=True)
    (tmp_path / "config" / "outdial" / "config.json").write_text(json.dumps(login))
    code, _, err, _ = await run_cli(tmp_path, ["nosuchagent"], "", [])
    assert code == 2 and err.startswith("outdial agent console: 404 NOT_FOUND: "), err

    nowhere = f"http://127.0.0.1:{free_port()}"
    # another URL: the saved key is not sent there (api/cli/client/config.py)
    code, _, err, _ = await run_cli(tmp_path, ["a", "--api-url", nowhere], "", [])
    assert code == 2 and "no workspace credentials" in err, err
    args = ["a", "--api-url", nowhere, "--workspace", "ws_1", "--key", "k"]
    code, _, err, _ = await run_cli(tmp_path, args, "", [])
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"outdial agent console: cannot reach the Outdial API at {nowhere}: ")
    assert "connection refused" in err and "Connection" not in err  # no exception's repr

    code, _, err, _ = await run_cli(tmp_path, ["a", "--var", "firstName"], "", [])
    assert (code, err) == (2, "outdial agent console: --var takes name=value, not 'firstName'\n")


def test_the_console_maps_an_agent_as_a_call_does() -> None:
    record = AgentRecord.from_fields(
        {
            "id": "ag_1",
            "name": "Reminder",
            "instructions": "Hi {{firstName}}",
            "first_message": "Hello",
            "worker_name": "outdial-agent",
            "pipeline": {"llm": {"provider": "groq", "model": "llama"}},
            "max_duration_seconds": 120,
            "voicemail_action": "leave_message",
            "voicemail_message": "Call back",
            "transfer_to": "+15550001111",
            "call_window": {"days": ["mon"], "start": "09:00", "end": "17:00", "timezone": "UTC"},
            "created_at": 1,
            "updated_at": 2,
        }
    )
    # what GET /v1/api/agents/{id} answers, camelCase on the wire
    answered = AgentOut.of(record).model_dump(mode="json")
    assert "firstMessage" in answered
    assert agent_config(answered) == record.config()


def scripted_agent(**fields: Any) -> AgentConfig:
    return AgentConfig(
        id="ag_1",
        name="Reminder",
        instructions=fields.pop("instructions", "Remind {{firstName}} of the appointment."),
        first_message=fields.pop("first_message", "Hi {{firstName}}!"),
        worker_name="outdial-agent",
        pipeline=PipelineConfig(llm=ModelConfig(provider="scripted")),
        **fields,
    )


def converse(
    monkeypatch: pytest.MonkeyPatch, agent: AgentConfig, script: list[Step], typed: str, **kw: Any
) -> tuple[int, list[str], ScriptedLLM]:
    model = ScriptedLLM(script)
    monkeypatch.setitem(PROVIDERS, ("llm", "scripted"), lambda spec: model)
    out = io.StringIO()
    code = run_console(
        agent, {"firstName": "Ada"}, workspace_id="ws_1", stdin=io.StringIO(typed), stdout=out, **kw
    )
    return code, out.getvalue().splitlines(), model


def test_metadata_reaches_agent_code_but_not_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    given: list[dict[str, Any]] = []

    def factory(call: CallContext) -> Any:
        given.append(call.metadata)
        return builtin_agent(call)

    code, lines, model = converse(
        monkeypatch,
        scripted_agent(),
        ["Hello Ada."],
        "Who is this?\n",
        metadata=SECRET_METADATA,
        factory=factory,
    )
    assert code == 0
    assert given == [SECRET_METADATA]
    assert "agent: Hello Ada." in lines
    seen = model.seen_text()
    assert model.requests and "Remind Ada of the appointment." in seen
    for value in [*SECRET_METADATA, *SECRET_METADATA.values()]:
        assert value not in seen


def test_transfer_and_voicemail_are_shown_not_done(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = scripted_agent(transfer_to="+15550001111")
    code, lines, _ = converse(monkeypatch, agent, [tool_call("transfer_call")], "A human!\n")
    assert code == 0
    assert lines[-3:] == [
        "[transfer_call] the callee would be transferred to +15550001111 here",
        "[transfer_call] the call would hang up here (reason: transferred)",
        "(call over: transferred)",
    ]

    agent = scripted_agent(
        voicemail=VoicemailConfig(action="leave_message", message="Call us, {{firstName}}.")
    )
    script: list[Step] = [tool_call("report_voicemail", greeting="leave a message")]
    code, lines, _ = converse(monkeypatch, agent, script, "Leave a message after the tone.\n")
    assert code == 0
    assert lines[-4:] == [
        "[report_voicemail] an answering machine (heard: leave a message): voicemail action "
        "leave_message",
        "[report_voicemail] the call would hang up here (reason: voicemail)",
        "agent: Call us, Ada.",
        "(call over: voicemail)",
    ]

    script = [tool_call("opt_out", goodbye="Sorry to bother you. Goodbye!")]
    code, lines, _ = converse(monkeypatch, scripted_agent(), script, "Never call me again.\n")
    assert code == 0
    assert lines[-4:] == [
        "[opt_out] the callee's number would join the do-not-call list here",
        "[opt_out] the call would hang up here (reason: opted_out)",
        "agent: Sorry to bother you. Goodbye!",
        "(call over: opted_out)",
    ]


def test_end_of_input_ends_the_console(monkeypatch: pytest.MonkeyPatch) -> None:
    code, lines, model = converse(monkeypatch, scripted_agent(), [], "")
    assert code == 0
    assert lines[-1] == "agent: Hi Ada!"
    assert not model.requests


def test_a_missing_model_key_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("OPENAI_API_KEY", "OUTDIAL_LLM_API_KEY", "OUTDIAL_LLM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    agent = scripted_agent().model_copy(update={"pipeline": PipelineConfig()})
    code = run_console(agent, {}, workspace_id="ws_1", stdin=io.StringIO("hi\n"))
    assert code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("outdial agent console: ") and "OPENAI_API_KEY" in line


def test_audio_without_a_sound_device_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = run_console(scripted_agent(), {}, workspace_id="ws_1", audio=True)
    assert code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("outdial agent console: no sound device for --audio")
