#!/usr/bin/env python3
"""Stand-in for Claude Code in `-p --output-format stream-json --verbose` mode.

The task is the last argument (or stdin when there are no arguments). It prints the same
line shapes as Claude Code: a system init line, an assistant message with a tool_use, the
user message with its tool_result, a final result line with usage and cost. It really does
what its tools say: Edit changes /workspace/hello.py, Bash runs the command.

With ANTHROPIC_BASE_URL set it also asks the model once, as Claude Code would: a Messages API
call with ANTHROPIC_API_KEY, whose answer it prints as assistant text (or the API's error).
A task containing ASK_MANY asks up to ten times, stopping at the first error.
A task containing FAIL prints a message on stderr and exits 3 instead.
"""
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request


def emit(obj):
    print(json.dumps(obj), flush=True)


def assistant(blocks):
    emit({"type": "assistant", "session_id": "s1", "parent_tool_use_id": None,
          "message": {"id": "msg_1", "type": "message", "role": "assistant",
                      "model": "fake-model", "content": blocks,
                      "usage": {"input_tokens": 10, "output_tokens": 5}}})


def tool_result(tool_id, text, is_error=False):
    emit({"type": "user", "session_id": "s1", "parent_tool_use_id": None,
          "message": {"role": "user", "content": [
              {"type": "tool_result", "tool_use_id": tool_id,
               "content": [{"type": "text", "text": text}], "is_error": is_error}]}})


def ask_model(question):
    """The model's answer text, or None with no model configured, or "model error ..."."""
    base = os.environ.get("ANTHROPIC_BASE_URL")
    if not base:
        return None
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "system": "You fix code.",
            "messages": [{"role": "user", "content": question}]}
    req = urllib.request.Request(
        base + "/v1/messages", data=json.dumps(body).encode(),
        headers={"x-api-key": os.environ.get("ANTHROPIC_API_KEY", ""),
                 "anthropic-version": "2023-06-01", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            answer = json.load(r)
        return "".join(b.get("text", "") for b in answer.get("content", []))
    except urllib.error.HTTPError as e:
        return "model error %d: %s" % (e.code, e.read().decode("utf-8", "replace"))
    except OSError as e:
        return "model error: %s" % e


def main():
    task = sys.argv[-1] if len(sys.argv) > 1 else sys.stdin.read()
    if "FAIL" in task:
        print("fake agent: cannot do that", file=sys.stderr, flush=True)
        sys.exit(3)

    emit({"type": "system", "subtype": "init", "session_id": "s1", "cwd": os.getcwd(),
          "model": "fake-model", "tools": ["Bash", "Edit"]})

    for _ in range(10 if "ASK_MANY" in task else 1):
        answer = ask_model(task)
        if answer is None:
            break
        assistant([{"type": "text", "text": "The model says: " + answer}])
        if answer.startswith("model error"):
            sys.exit(1)

    path = "/workspace/hello.py"
    old, new = 'return "hello"', 'return "hello, world"'
    assistant([{"type": "text", "text": "I will change the greeting."},
               {"type": "tool_use", "id": "toolu_1", "name": "Edit",
                "input": {"file_path": path, "old_string": old, "new_string": new}}])
    with open(path) as f:
        src = f.read()
    with open(path, "w") as f:
        f.write(src.replace(old, new))
    tool_result("toolu_1", "The file " + path + " has been updated.")

    # A line that is not valid JSON: it must reach the terminal as text.
    print('{"type": "assistant", "message": {broken', flush=True)
    print("plain progress text", flush=True)

    cmd = ("echo KEY=${ANTHROPIC_API_KEY:-unset} SECRET=${KILN_SECRET_TEST:-unset} "
           "TASK=" + task.replace(" ", "_"))
    assistant([{"type": "tool_use", "id": "toolu_2", "name": "Bash",
                "input": {"command": cmd, "description": "Show the environment"}}])
    out = subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True).stdout
    tool_result("toolu_2", out)

    assistant([{"type": "text", "text": "Done."}])
    emit({"type": "result", "subtype": "success", "is_error": False, "duration_ms": 12,
          "num_turns": 3, "result": "Changed the greeting to hello, world.",
          "session_id": "s1", "total_cost_usd": 0.0125,
          "usage": {"input_tokens": 100, "cache_creation_input_tokens": 20,
                    "cache_read_input_tokens": 30, "output_tokens": 40}})


if __name__ == "__main__":
    main()
