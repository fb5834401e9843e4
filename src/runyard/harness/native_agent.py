"""runyard's ``native`` agent: a small tool-using loop over the model gateway.

It exists so that an agent can run with nothing installed but the system Python: the
``native`` harness adapter copies this file into the run's private directory and runs it in
the sandbox with ``/usr/bin/python3``, so it uses the standard library only, never runyard.

Input: the prompt on stdin, or from the file named by the first argument.
Environment:
  RUNYARD_MODEL_BASE_URL     OpenAI-compatible base URL of the model gateway (required)
  RUNYARD_MODEL              the ``model`` of each request (omitted when unset)
  RUNYARD_MAX_STEPS          model calls allowed in this run (default 20)
  RUNYARD_SESSION_ID         continue ``~/.runyard/sessions/<id>.json`` if it exists
  RUNYARD_SHELL_TIMEOUT      default seconds per ``run_shell`` call (default 120)
  RUNYARD_TOOL_OUTPUT_LIMIT  characters of one tool result shown to the model (default 20000)
  RUNYARD_MODEL_TIMEOUT      seconds per model request (default 600)
Output: stdout carries exactly one JSON document, ``{"text", "sessionId", "toolCallCount",
"toolCalls", "steps", "stopReason", "error", "warnings"}`` (``toolCalls``: one trace entry
per tool call, ``name, arguments, startedAt, completedAt, ok, output``, texts shortened);
``stopReason`` is ``completed`` or ``step_limit`` (exit 0), ``model_error`` (exit 1),
``invalid_input`` (exit 2) or ``internal_error`` (exit 3). The conversation is saved to the
session file (a new id when none was given) once the loop has started. Diagnostics go to stderr.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import signal
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from subprocess import DEVNULL, PIPE, STDOUT, Popen, TimeoutExpired
from typing import Any

Message = dict[str, Any]
Chat = Callable[[list[Message]], Message]

SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
ROLES = {"system", "user", "assistant", "tool"}
MAX_LIST_ENTRIES = 500
TRACE_LIMIT = 2000  # characters of a tool call's arguments and output kept in its trace
EXIT_CODES = {"completed": 0, "step_limit": 0, "model_error": 1, "invalid_input": 2}
SYSTEM_PROMPT = (
    "You are an autonomous agent in a sandboxed Linux environment. Your working directory is "
    "{cwd}; relative paths resolve against it. Use the tools to inspect and change files and "
    "to run commands. When the task is done, answer with a concise final message."
)

# Each tool's parameters: "name", "name:integer", a trailing "?" marks an optional one.
TOOL_PARAMS = {
    "run_shell": "command timeout_seconds:integer?",
    "read_file": "path offset:integer? limit:integer?",
    "write_file": "path content",
    "edit_file": "path old_text new_text",
    "list_directory": "path?",
}


def tool_schema(name: str, description: str) -> dict[str, Any]:
    """An OpenAI ``tools`` entry from the tool's :data:`TOOL_PARAMS` and description."""
    params = [(p.rstrip("?").partition(":"), p.endswith("?")) for p in TOOL_PARAMS[name].split()]
    props = {key: {"type": kind or "string"} for (key, _, kind), _ in params}
    required = [key for (key, _, _), optional in params if not optional]
    schema = {"type": "object", "properties": props, "required": required}
    function = {"name": name, "description": description, "parameters": schema}
    return {"type": "function", "function": function}


class Stop(Exception):
    """Ends the run early: ``invalid_input`` (bad prompt, environment, session) or
    ``model_error`` (the gateway failed or did not answer with a chat completion)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ToolError(Exception):
    """A tool failed in a way the model should see and can correct."""


def log(message: str) -> None:
    print(f"native-agent: {message}", file=sys.stderr, flush=True)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip() or str(default)
    if not re.fullmatch(r"[0-9]+", raw) or int(raw) < 1:
        raise Stop("invalid_input", f"{name} must be a positive integer, got {raw!r}")
    return int(raw)


def arg(args: dict[str, Any], key: str, kind: type[Any], default: Any = None) -> Any:
    value = default if args.get(key) is None else args[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ToolError(f"argument {key!r} must be of type {kind.__name__}")
    return value


class _Capture(threading.Thread):
    """Drains a pipe, keeping the first and last ``limit // 2`` bytes."""

    def __init__(self, fd: int, limit: int) -> None:
        super().__init__(daemon=True)
        self.fd, self.half = fd, max(limit // 2, 1)
        self.head, self.tail, self.dropped = bytearray(), bytearray(), 0

    def run(self) -> None:
        while chunk := os.read(self.fd, 65536):
            take = max(self.half - len(self.head), 0)
            self.head += chunk[:take]
            self.tail += chunk[take:]
            if len(self.tail) > self.half:
                self.dropped += len(self.tail) - self.half
                del self.tail[: len(self.tail) - self.half]

    def text(self) -> str:
        gap = f"\n[... {self.dropped} bytes omitted ...]\n" if self.dropped else ""
        return self.head.decode(errors="replace") + gap + self.tail.decode(errors="replace")


class Tools:
    """The tools the model may call; every failure becomes an ``error: …`` result."""

    def __init__(self, workdir: Path, shell_timeout: int, output_limit: int) -> None:
        self.workdir, self.shell_timeout, self.limit = workdir, shell_timeout, output_limit

    def call(self, name: str, raw_arguments: str) -> str:
        if name not in TOOL_PARAMS:
            return f"error: unknown tool {name!r}; the tools are {', '.join(TOOL_PARAMS)}"
        try:
            args = json.loads(raw_arguments or "{}")
            if not isinstance(args, dict):
                raise ToolError("the arguments must be a JSON object")
            return str(getattr(self, name)(args))
        except json.JSONDecodeError as exc:
            return f"error: the arguments are not valid JSON: {exc}"
        except ToolError as exc:
            return f"error: {exc}"
        except Exception as exc:  # a tool must never end the run
            return f"error: {type(exc).__name__}: {exc}"

    def path(self, args: dict[str, Any], default: str | None = None) -> Path:
        raw = arg(args, "path", str, default)
        if not raw or "\x00" in raw:
            raise ToolError("argument 'path' must be a non-empty path")
        path = Path(os.path.expanduser(raw))
        return path if path.is_absolute() else self.workdir / path

    def run_shell(self, args: dict[str, Any]) -> str:
        """Run a bash command in the working directory (stdin is empty); returns the exit
        code and the combined stdout and stderr, shortened in the middle when long."""
        command = arg(args, "command", str)
        timeout = min(max(arg(args, "timeout_seconds", int, self.shell_timeout), 1), 3600)
        # The process's cwd is the working directory; bash gets its own process group.
        proc = Popen(
            ["bash", "-c", command], stdin=DEVNULL, stdout=PIPE, stderr=STDOUT, process_group=0
        )
        assert proc.stdout is not None
        capture = _Capture(proc.stdout.fileno(), self.limit)
        capture.start()
        try:
            status = f"exit code: {proc.wait(timeout=timeout)}"
        except TimeoutExpired:
            status = f"timed out after {timeout} s; the command was killed"
        finally:  # the whole process group goes, so no background job holds the pipe open
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        capture.join(timeout=5)
        if not capture.is_alive():
            proc.stdout.close()
        return f"{status}\n{capture.text() or '(no output)'}"

    def read_file(self, args: dict[str, Any]) -> str:
        """Read a UTF-8 text file; offset is the first line (1-based), limit a line count."""
        path = self.path(args)
        first, count = arg(args, "offset", int, 1), arg(args, "limit", int, 10**9)
        if first < 1 or count < 1:
            raise ToolError("offset and limit must be at least 1")
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        body = "".join(lines[first - 1 : first - 1 + count])
        if len(body) > self.limit:
            note = f"[truncated: the file has {len(lines)} lines; read on with offset and limit]"
            return f"{body[: self.limit]}\n{note}"
        return body if lines else "(the file is empty)"

    def write_file(self, args: dict[str, Any]) -> str:
        """Create or overwrite a file with content; parent directories are created."""
        path, content = self.path(args), arg(args, "content", str)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as fh:
            fh.write(content)
        return f"wrote {len(content.encode())} bytes to {path}"

    def edit_file(self, args: dict[str, Any]) -> str:
        """Replace old_text with new_text in a file; old_text must occur exactly once."""
        path, old, new = self.path(args), arg(args, "old_text", str), arg(args, "new_text", str)
        if not old:
            raise ToolError("old_text must not be empty")
        with path.open(encoding="utf-8", newline="") as fh:
            text = fh.read()
        found = text.count(old)
        if found != 1:
            hint = "copy it exactly" if not found else "add context so it matches once"
            raise ToolError(f"old_text occurs {found} times in {path}, not once; {hint}")
        with path.open("w", encoding="utf-8", newline="") as fh:
            fh.write(text.replace(old, new, 1))
        return f"edited {path}"

    def list_directory(self, args: dict[str, Any]) -> str:
        """List a directory (default: the working directory); directories end with '/'."""
        with os.scandir(self.path(args, ".")) as it:
            entries = sorted(it, key=lambda e: e.name)
        lines = [
            f"{e.name}/" if e.is_dir() else f"{e.name}  ({e.stat(follow_symlinks=False).st_size} B)"
            for e in entries[:MAX_LIST_ENTRIES]
        ]
        if len(entries) > MAX_LIST_ENTRIES:
            lines.append(f"[... {len(entries) - MAX_LIST_ENTRIES} more entries]")
        return "\n".join(lines) or "(empty directory)"


TOOLS = [tool_schema(n, " ".join((getattr(Tools, n).__doc__ or n).split())) for n in TOOL_PARAMS]


def _error_detail(exc: urllib.error.HTTPError) -> str:
    text = ""
    with exc, contextlib.suppress(OSError):
        text = exc.read().decode(errors="replace")
    with contextlib.suppress(ValueError, AttributeError):
        error = json.loads(text).get("error")
        text = str(error.get("message", error) if isinstance(error, dict) else error or text)
    return " ".join(text.split())[:300] or "(empty body)"


def chat(url: str, model: str | None, timeout: int, messages: list[Message]) -> Message:
    """One non-streaming Chat Completions call; never through an HTTP proxy."""
    body: dict[str, Any] = {"messages": messages, "tools": TOOLS, "tool_choice": "auto"}
    if model:
        body["model"] = model
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    request = urllib.request.Request(url, json.dumps(body).encode(), headers)  # noqa: S310
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = _error_detail(exc)
        raise Stop("model_error", f"the model gateway answered HTTP {exc.code}: {detail}") from None
    except OSError as exc:  # URLError, refused, reset, timeout
        reason = getattr(exc, "reason", exc)
        raise Stop("model_error", f"the model gateway is unreachable: {reason}") from None
    try:
        message = json.loads(raw)["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        message = None
    if not isinstance(message, dict):
        raise Stop("model_error", "the model gateway's answer is not a chat completion")
    return assistant_entry(message)


def assistant_entry(message: dict[str, Any]) -> Message:
    """The assistant message as the conversation keeps it (normalized)."""
    content = message.get("content")
    if isinstance(content, list):  # content parts
        content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    entry: Message = {"role": "assistant", "content": content if isinstance(content, str) else None}
    calls = []
    for raw in message.get("tool_calls") or []:
        fn = raw.get("function") if isinstance(raw, dict) else None
        if isinstance(fn, dict):
            args = fn.get("arguments")
            args = args if isinstance(args, str) else json.dumps(args or {})
            call_id = str(raw.get("id") or f"call_{uuid.uuid4().hex[:16]}")
            function = {"name": str(fn.get("name", "")), "arguments": args}
            calls.append({"id": call_id, "type": "function", "function": function})
    if calls:
        entry["tool_calls"] = calls
    elif entry["content"] is None:  # only a message with tool calls may have no content
        entry["content"] = ""
    return entry


def load_session(directory: Path, session_id: str) -> list[Message] | None:
    path = directory / f"{session_id}.json"
    if not path.exists():
        return None
    try:
        messages = json.loads(path.read_text(encoding="utf-8"))["messages"]
        if isinstance(messages, list) and all(m.get("role") in ROLES for m in messages):
            return messages
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    raise Stop("invalid_input", f"session {session_id!r} cannot be continued: its file is invalid")


def save_session(directory: Path, session_id: str, messages: list[Message]) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = directory / f".{session_id}.{os.getpid()}.tmp"
    document = {"version": 1, "sessionId": session_id, "messages": messages}
    tmp.write_text(json.dumps(document), encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, directory / f"{session_id}.json")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def read_prompt(argv: list[str]) -> str:
    if len(argv) > 1:
        raise Stop("invalid_input", "usage: native_agent.py [PROMPT_FILE]  (else stdin)")
    try:
        data = Path(argv[0]).read_bytes() if argv else sys.stdin.buffer.read()
    except OSError as exc:
        raise Stop("invalid_input", f"cannot read the prompt: {exc}") from None
    prompt = data.decode("utf-8", errors="replace")
    if not prompt.strip():
        raise Stop("invalid_input", "the prompt is empty")
    return prompt


def agent_loop(
    model: Chat, tools: Tools, messages: list[Message], steps: int, result: Message
) -> None:
    """Call the model until it answers without tool calls or the step limit is reached."""
    while result["steps"] < steps:
        result["steps"] += 1
        entry = model(messages)
        messages.append(entry)
        result["text"] = entry["content"] or result["text"]
        if not entry.get("tool_calls"):
            result["stopReason"] = "completed"  # text: the last non-empty assistant text
            return
        for call in entry["tool_calls"]:
            name, arguments = call["function"]["name"], call["function"]["arguments"]
            log(f"step {result['steps']}: {name}")
            started = now_ms()
            output = tools.call(name, arguments)
            result["toolCallCount"] += 1
            result["toolCalls"].append(
                {
                    "name": name,
                    "arguments": arguments[:TRACE_LIMIT],
                    "startedAt": started,
                    "completedAt": now_ms(),
                    "ok": not output.startswith("error: "),
                    "output": output[:TRACE_LIMIT],
                }
            )
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": output})
    limit = f"the step limit of {steps} model calls was reached before the agent finished"
    result.update(stopReason="step_limit", error=limit)


def run(argv: list[str], result: Message) -> None:
    prompt = read_prompt(argv)
    base_url = os.environ.get("RUNYARD_MODEL_BASE_URL", "").strip()
    if not re.match(r"https?://", base_url):
        raise Stop("invalid_input", f"RUNYARD_MODEL_BASE_URL is no http(s) URL: {base_url!r}")
    url, model = base_url.rstrip("/") + "/chat/completions", os.environ.get("RUNYARD_MODEL")
    timeout, max_steps = env_int("RUNYARD_MODEL_TIMEOUT", 600), env_int("RUNYARD_MAX_STEPS", 20)
    workdir, shell_timeout = Path.cwd(), env_int("RUNYARD_SHELL_TIMEOUT", 120)
    tools = Tools(workdir, shell_timeout, env_int("RUNYARD_TOOL_OUTPUT_LIMIT", 20000))
    session_id = os.environ.get("RUNYARD_SESSION_ID") or None
    if session_id is not None and not SESSION_ID.fullmatch(session_id):
        raise Stop("invalid_input", f"RUNYARD_SESSION_ID must match {SESSION_ID.pattern}")
    sessions = Path.home() / ".runyard" / "sessions"
    messages = (load_session(sessions, session_id) if session_id else None) or [
        {"role": "system", "content": SYSTEM_PROMPT.format(cwd=workdir)}
    ]
    result["sessionId"] = session_id = session_id or str(uuid.uuid4())
    messages.append({"role": "user", "content": prompt})
    try:
        agent_loop(functools.partial(chat, url, model, timeout), tools, messages, max_steps, result)
    finally:
        try:
            save_session(sessions, session_id, messages)
        except OSError as exc:
            log(f"cannot save the session: {exc}")
            result["warnings"].append(f"the session could not be saved: {exc}")


def main(argv: list[str]) -> int:
    sys.stdout.flush()  # the real stdout carries only the result; stray prints go to stderr
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    result: Message = {"text": "", "sessionId": None, "toolCallCount": 0, "steps": 0}
    result["toolCalls"] = []
    result.update(stopReason="internal_error", error=None, warnings=[])
    try:
        run(argv, result)
    except Stop as exc:
        log(str(exc))
        result.update(stopReason=exc.reason, error=str(exc))
    except Exception as exc:
        traceback.print_exc()
        result.update(stopReason="internal_error", error=f"{type(exc).__name__}: {exc}")
    out.write(json.dumps(result) + "\n")
    out.flush()
    return EXIT_CODES.get(result["stopReason"], 3)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
