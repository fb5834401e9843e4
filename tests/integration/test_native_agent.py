"""The ``native`` harness end to end: the real agent program against a scripted model.

Each test builds the adapter's invocation, writes its private files into a
run directory, runs the real ``native_agent.py`` with the system
``/usr/bin/python3`` (cwd and ``HOME`` a temporary agent home) and points it
at the scripted fake OpenAI-compatible upstream of :mod:`tests.fakes.upstream`.
The files the tools touch are checked on disk, the conversation is checked
in the requests the fake recorded, and the printed result document goes
through the adapter's ``interpret()`` as the worker would do it.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import takewhile
from pathlib import Path
from typing import Any

import pytest

from runyard.domain.entities import Agent, Environment, Run, RunOutcome
from runyard.harness import build_registry
from runyard.harness.base import HarnessContext
from runyard.harness.native import PROGRAM, PYTHON, NativeHarness, program_source
from runyard.sandbox.base import ProcessResult, SandboxPaths
from tests.fakes.upstream import FakeUpstream, ToolCall, error, reply, tool_call

MODEL = "fake-model"


@dataclass
class Finished:
    doc: dict[str, Any]
    exit_code: int
    stderr: str
    outcome: RunOutcome

    @property
    def summary(self) -> tuple[str, int, int]:
        return self.doc["stopReason"], self.doc["steps"], self.doc["toolCallCount"]


@dataclass
class Sandbox:
    """A fake agent home (also the cwd) and a run directory, as the worker lays them out."""

    root: Path
    fake: FakeUpstream

    @property
    def home(self) -> Path:
        return self.root / "home"

    def session_file(self, session_id: str) -> Path:
        return self.home / ".runyard" / "sessions" / f"{session_id}.json"

    def run(
        self, prompt: str, *args: str, session: str | None = None, steps: int = 20, **env: str
    ) -> Finished:
        """Run the agent as the worker would; ``args`` follow the argv, ``env`` overrides."""
        harness, run_dir = NativeHarness(max_steps=steps), self.root / "run"
        run_dir.mkdir(exist_ok=True)
        ctx = context(prompt, session, SandboxPaths(str(self.home), str(run_dir)))
        invocation = harness.invocation(ctx)
        for name, data in invocation.files.items():
            (run_dir / name).write_bytes(data)
        base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(self.home)}
        gateway = {"RUNYARD_MODEL_BASE_URL": self.fake.openai_base_url, "RUNYARD_MODEL": MODEL}
        proc = subprocess.run(
            [*invocation.argv, *args],
            input=invocation.stdin,
            cwd=self.home,
            env={**base, **invocation.env, **gateway, **env},
            capture_output=True,
            timeout=120,
            check=False,
        )
        result = process_result(proc.stdout, proc.returncode, stderr=proc.stderr[-16_384:])
        doc = json.loads(proc.stdout)  # the whole stdout is exactly one JSON document
        return Finished(doc, proc.returncode, proc.stderr.decode(), harness.interpret(ctx, result))


def process_result(
    stdout: bytes, exit_code: int | None = 0, *, stderr: bytes = b"", **flags: bool
) -> ProcessResult:
    """A supervisor result; ``flags``: ``truncated``, ``timed_out``, ``cancelled``."""
    cut, late, stop = (flags.get(k, False) for k in ("truncated", "timed_out", "cancelled"))
    return ProcessResult(exit_code, stdout, cut, stderr, late, stop, duration_ms=1)


def context(prompt: str, session_id: str | None, paths: SandboxPaths) -> HarnessContext:
    environment = Environment(status="ready", attention="none", created_at=1, updated_at=1)
    target = {"harnessName": "native", "enabled": True, "role": "default"}
    agent = Agent("agent_1", "ws_1", "Native", "native", 1, 1, {}, [target], [], {}, environment)
    run = Run("run_1", "ws_1", agent.id, "running", 1, 1, prompt, "native", None, {}, 300)
    return HarnessContext(run=replace(run, session_id=session_id), agent=agent, paths=paths)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture
def box(fake: FakeUpstream, tmp_path: Path) -> Sandbox:
    fake.reset()
    (tmp_path / "home").mkdir()
    return Sandbox(tmp_path, fake)


def tool_results(fake: FakeUpstream, request_index: int) -> list[str]:
    """The tool messages that ended the conversation sent in one model request."""
    backwards = reversed(fake.requests[request_index].body["messages"])
    return [m["content"] for m in takewhile(lambda m: m["role"] == "tool", backwards)][::-1]


# ---- the loop and its tools ---------------------------------------------------------


def test_multi_step_tool_use_changes_real_files(box: Sandbox, fake: FakeUpstream) -> None:
    edit = {"path": "notes/hello.txt", "old_text": "world", "new_text": "runyard"}
    fake.script_openai_chat(
        [
            tool_call("write_file", {"path": "notes/hello.txt", "content": "hello world\n"}),
            tool_call("read_file", {"path": "notes/hello.txt"}),
            tool_call("edit_file", edit),
            tool_call("list_directory", {"path": "notes"}),
            tool_call("run_shell", {"command": "cat notes/hello.txt; echo oops >&2; exit 3"}),
            reply("All done."),
        ]
    )
    done = box.run("Write, read, edit, list and run.")

    assert done.exit_code == 0, done.stderr
    assert done.summary == ("completed", 6, 5) and done.doc["error"] is None
    assert done.doc["text"] == "All done."
    assert (box.home / "notes" / "hello.txt").read_text() == "hello runyard\n"

    assert tool_results(fake, 1)[0].startswith("wrote 12 bytes")
    assert tool_results(fake, 2) == ["hello world\n"]
    assert tool_results(fake, 3) == [f"edited {box.home / 'notes' / 'hello.txt'}"]
    assert tool_results(fake, 4) == ["hello.txt  (14 B)"]
    shell = tool_results(fake, 5)[0]
    assert shell.startswith("exit code: 3\n") and "hello runyard" in shell and "oops" in shell
    first = fake.requests[0].body
    assert first["model"] == MODEL
    names = {t["function"]["name"] for t in first["tools"]}
    assert names == {"run_shell", "read_file", "write_file", "edit_file", "list_directory"}
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert first["messages"][1]["content"] == "Write, read, edit, list and run."
    second = fake.requests[1].body["messages"]  # a tool result answers its own call
    assert second[-1]["tool_call_id"] == second[-2]["tool_calls"][0]["id"]

    outcome = done.outcome
    assert (outcome.status, outcome.output) == ("completed", "All done.")
    assert outcome.tool_usage == {"source": "harness_result", "toolCallCount": 5}
    assert outcome.session_id == done.doc["sessionId"] and outcome.harness_resolved == "native"


def test_parallel_tool_calls_count_per_call_not_per_step(box: Sandbox, fake: FakeUpstream) -> None:
    calls = [
        ToolCall("write_file", {"path": "a.txt", "content": "A"}),
        ToolCall("run_shell", {"command": "echo printed-by-tool"}),
    ]
    fake.script_openai_chat([reply("Two at once.", tool_calls=calls), reply("")])
    done = box.run("go")
    assert done.summary == ("completed", 2, 2) and (box.home / "a.txt").read_text() == "A"
    assert tool_results(fake, 1)[1] == "exit code: 0\nprinted-by-tool\n"
    # The final answer was empty: the last text the model wrote is the result.
    assert done.doc["text"] == "Two at once."
    saved = json.loads(box.session_file(done.doc["sessionId"]).read_text())
    assert saved["messages"][-1] == {"role": "assistant", "content": ""}  # never null


def test_tool_failures_are_reported_to_the_model(box: Sandbox, fake: FakeUpstream) -> None:
    (box.home / "twice.txt").write_text("alpha\nalpha\n")
    fake.script_openai_chat(
        [
            tool_call("edit_file", {"path": "twice.txt", "old_text": "gamma", "new_text": "x"}),
            tool_call("edit_file", {"path": "twice.txt", "old_text": "alpha", "new_text": "x"}),
            tool_call("read_file", {"path": "missing.txt"}),
            tool_call("no_such_tool", {}),
            tool_call("write_file", '{"path": "broken.txt", '),
            reply("I could not do it."),
        ]
    )
    done = box.run("edit it")

    assert done.summary == ("completed", 6, 5) and done.exit_code == 0
    results = [tool_results(fake, i)[0] for i in range(1, 6)]
    assert results[0].startswith(f"error: old_text occurs 0 times in {box.home / 'twice.txt'}")
    assert results[1].startswith("error: old_text occurs 2 times in")
    assert results[2].startswith("error: FileNotFoundError")
    assert results[3].startswith("error: unknown tool 'no_such_tool'")
    assert results[4].startswith("error: the arguments are not valid JSON")
    assert (box.home / "twice.txt").read_text() == "alpha\nalpha\n"
    assert not (box.home / "broken.txt").exists()


def test_run_shell_timeout_output_cap_and_background_jobs(box: Sandbox, fake: FakeUpstream) -> None:
    fake.script_openai_chat(
        [
            tool_call("run_shell", {"command": "echo before; sleep 60", "timeout_seconds": 1}),
            tool_call("run_shell", {"command": "seq 1 5000"}),
            tool_call("run_shell", {"command": "sleep 60 & echo started"}),
            reply("ok"),
        ]
    )
    done = box.run("shell", RUNYARD_TOOL_OUTPUT_LIMIT="200")

    assert done.doc["stopReason"] == "completed"
    assert tool_results(fake, 1) == ["timed out after 1 s; the command was killed\nbefore\n"]
    (capped,) = tool_results(fake, 2)
    assert capped.startswith("exit code: 0\n1\n2\n3\n") and capped.endswith("\n4999\n5000\n")
    assert "bytes omitted" in capped and len(capped) < 400
    # A job left in the background does not keep the tool (or the run) waiting.
    assert tool_results(fake, 3) == ["exit code: 0\nstarted\n"]


def test_prompt_from_a_file_argument(box: Sandbox, fake: FakeUpstream) -> None:
    prompt_file = box.root / "prompt.txt"
    prompt_file.write_text("from the file")
    fake.script_openai_chat([reply("read it")])
    done = box.run("ignored: stdin is not read", str(prompt_file))
    assert done.doc["text"] == "read it"
    assert fake.requests[0].body["messages"][-1] == {"role": "user", "content": "from the file"}


# ---- step limit, model errors, bad input -----------------------------------------


@pytest.mark.parametrize(("text", "status"), [("Still looking.", "partial"), ("", "failed")])
def test_step_limit_ends_the_loop(box: Sandbox, fake: FakeUpstream, text: str, status: str) -> None:
    shell = {"command": "true"}
    fake.script_openai_chat(
        [tool_call("run_shell", shell, text=text), tool_call("run_shell", shell), reply("never")]
    )
    done = box.run("loop forever", steps=2)

    assert done.exit_code == 0 and "step limit of 2" in done.doc["error"]
    assert done.summary == ("step_limit", 2, 2)
    assert len(fake.requests) == 2 and fake.pending() == 1
    outcome = done.outcome
    assert (outcome.status, outcome.output) == (status, text or None)
    assert outcome.error.code == "step_limit"
    assert outcome.tool_usage == {"source": "harness_result", "toolCallCount": 2}
    # The conversation so far is kept, so the run can be continued.
    saved = json.loads(box.session_file(done.doc["sessionId"]).read_text())
    assert saved["messages"][-1]["role"] == "tool"


def test_model_errors(box: Sandbox, fake: FakeUpstream) -> None:
    fake.script_openai_chat(
        [tool_call("write_file", {"path": "x.txt", "content": "x"}), error(503, "overloaded")]
    )
    done = box.run("try")

    assert done.exit_code == 1 and done.summary == ("model_error", 2, 1)
    assert done.doc["error"] == "the model gateway answered HTTP 503: overloaded"
    outcome = done.outcome
    assert (outcome.status, outcome.error.code) == ("failed", "model_error")
    assert outcome.error.message == done.doc["error"]
    assert outcome.session_id == done.doc["sessionId"]
    assert box.session_file(done.doc["sessionId"]).exists()

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = box.run("hello", RUNYARD_MODEL_BASE_URL=f"http://127.0.0.1:{port}/v1")
    assert done.exit_code == 1 and done.outcome.error.code == "model_error"
    assert done.doc["error"].startswith("the model gateway is unreachable")


@pytest.mark.parametrize(
    ("env", "prompt", "message"),
    [
        ({"RUNYARD_MODEL_BASE_URL": "file:///etc/passwd"}, "hi", "RUNYARD_MODEL_BASE_URL"),
        ({"RUNYARD_MAX_STEPS": "zero"}, "hi", "RUNYARD_MAX_STEPS"),
        ({}, "  \n", "the prompt is empty"),
    ],
)
def test_invalid_input(
    box: Sandbox, fake: FakeUpstream, env: dict[str, str], prompt: str, message: str
) -> None:
    done = box.run(prompt, **env)
    assert done.exit_code == 2 and done.doc["stopReason"] == "invalid_input"
    assert message in done.doc["error"]
    assert (done.outcome.status, done.outcome.error.code) == ("failed", "invalid_input")
    assert fake.requests == []


# ---- sessions ---------------------------------------------------------------------


def test_session_continuation_sends_the_earlier_conversation(
    box: Sandbox, fake: FakeUpstream
) -> None:
    fake.script_openai_chat(
        [tool_call("write_file", {"path": "memo.txt", "content": "42"}), reply("Saved 42.")]
    )
    first = box.run("Remember 42.")
    session_id = first.doc["sessionId"]
    assert session_id and first.outcome.session_id == session_id
    saved = json.loads(box.session_file(session_id).read_text())
    assert saved["sessionId"] == session_id
    roles = [m["role"] for m in saved["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]

    fake.script_openai_chat([reply("It was 42.")])
    second = box.run("What was it?", session=session_id)

    assert second.doc["sessionId"] == session_id and second.doc["text"] == "It was 42."
    sent = fake.requests[-1].body["messages"]
    assert sent[:-1] == saved["messages"]
    assert sent[-1] == {"role": "user", "content": "What was it?"}
    assert sent[1] == {"role": "user", "content": "Remember 42."}
    assert sent[4]["content"] == "Saved 42."
    assert len(json.loads(box.session_file(session_id).read_text())["messages"]) == 7


def test_a_new_session_id_names_the_conversation(box: Sandbox, fake: FakeUpstream) -> None:
    fake.script_openai_chat([reply("hi")])
    done = box.run("hello", session="ticket-17.a_b")
    assert done.doc["sessionId"] == "ticket-17.a_b"
    assert [m["role"] for m in fake.requests[0].body["messages"]] == ["system", "user"]
    assert box.session_file("ticket-17.a_b").exists()

    # A session file that is not a conversation is refused, not overwritten.
    box.session_file("broken").write_text("{not json")
    done = box.run("hello", session="broken")
    assert done.doc["stopReason"] == "invalid_input" and "broken" in done.doc["error"]
    assert box.session_file("broken").read_text() == "{not json"
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    "session_id", ["../escape", "a/b", ".hidden", "-flag", "with space", "x" * 201, "é"]
)
def test_invalid_session_id_is_rejected(box: Sandbox, fake: FakeUpstream, session_id: str) -> None:
    done = box.run("hello", session=session_id)
    assert done.exit_code == 2 and done.doc["stopReason"] == "invalid_input"
    assert "RUNYARD_SESSION_ID" in done.doc["error"] and done.doc["sessionId"] is None
    assert done.outcome.error.code == "invalid_input"
    assert fake.requests == []
    assert sorted(p.name for p in box.root.rglob("*")) == sorted(["home", "run", PROGRAM])


# ---- the adapter --------------------------------------------------------------------


def test_invocation_ships_the_program_and_passes_the_session() -> None:
    paths = SandboxPaths(home="/home/agent", run_dir="/run/runyard")
    harness = NativeHarness(max_steps=7)
    harness.check()
    invocation = harness.invocation(context("do it", "s-1", paths))
    assert invocation.argv == [PYTHON, "-I", "/run/runyard/native_agent.py"]
    assert invocation.stdin == b"do it"
    assert invocation.env == {"RUNYARD_MAX_STEPS": "7", "RUNYARD_SESSION_ID": "s-1"}
    packaged = Path(__file__).parents[2] / "src" / "runyard" / "harness" / PROGRAM
    assert invocation.files == {PROGRAM: program_source()} == {PROGRAM: packaged.read_bytes()}
    assert "RUNYARD_SESSION_ID" not in harness.invocation(context("x", None, paths)).env
    assert build_registry().get("native").name == "native"


@pytest.mark.parametrize(
    ("stdout", "exit_code", "status", "code"),
    [
        (b"", 1, "failed", "harness_failed"),
        (b"Traceback (most recent call last):\n", 1, "failed", "harness_failed"),
        (b'["not", "an", "object"]', 0, "failed", "harness_failed"),
        (b'{"stopReason": "internal_error", "error": "x"}', 3, "failed", "harness_failed"),
        (b'{"stopReason": "invalid_input", "error": "bad"}', 2, "failed", "invalid_input"),
        (b'{"stopReason": "completed", "text": "hi", "toolCallCount": 0}', 0, "completed", None),
    ],
)
def test_interpret_result_documents(
    stdout: bytes, exit_code: int, status: str, code: str | None
) -> None:
    ctx = context("p", None, SandboxPaths("/home/agent", "/run/runyard"))
    outcome = NativeHarness().interpret(ctx, process_result(stdout, exit_code))
    assert (outcome.status, outcome.error.code) == (status, code)
    assert outcome.harness_resolved == "native"


def test_interpret_timeout_cancel_truncation_and_warnings() -> None:
    ctx = context("p", None, SandboxPaths("/home/agent", "/run/runyard"))
    harness = NativeHarness()
    assert harness.interpret(ctx, process_result(b"", None, timed_out=True)).status == "timed_out"
    assert harness.interpret(ctx, process_result(b"", None, cancelled=True)).status == "cancelled"
    cut = harness.interpret(ctx, process_result(b'{"stopReason": "comp', 0, truncated=True))
    assert cut.error.code == "harness_failed" and "truncated" in (cut.error.message or "")
    document = b'{"stopReason": "completed", "text": "t", "warnings": ["w1", 5]}'
    warned = harness.interpret(ctx, process_result(document))
    assert warned.warnings == ["w1"] and warned.output == "t"
