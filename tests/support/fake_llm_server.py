#!/usr/bin/env python3
"""A fake LLM API for tests: speaks OpenAI Chat Completions (/v1/chat/completions or
/chat/completions), the OpenAI Responses API (/v1/responses, as Codex uses it) and the Anthropic
Messages API (/v1/messages, query strings such as ?beta=true ignored), streaming (real SSE over
chunked transfer encoding, events split across writes) and not.

It replays a scripted trajectory, one entry per request, in order. The script is a JSON list
(or {"turns": [...]}) of entries:
  {"thought": "...", "tool_calls": [{"id"?: ..., "name": ..., "arguments": {...}} |
                                    {"name": ..., "raw": "<malformed json text>"}],
   "usage": {"in": N, "out": M}}
  {"status": 429, "retry_after": 0, "message": "slow down"}   an error response
  {"disconnect": true}                                          a 200 cut off mid-body
  {"hang": S}                  no answer for S seconds, then a 503 (a test kills the client)
  {"replay": "/path/to/recorded.sse", "chunk": N, "newline": "lf"|"crlf"|"cr"}
      a recorded response body sent verbatim (text/event-stream for .sse files, else
      application/json), in writes of N bytes (default: whole events split in two), with its
      line endings rewritten when "newline" is given
Several jobs can share one server with {"by_marker": {"MARKER": [entries], ...}}: a request
whose body contains MARKER (put it in the job's task) takes the next entry of that list.
A request with an empty tool list, or a Messages API request without a system prompt, is an
agent CLI's side call (Claude Code's titles, summaries, command-prefix checks and warm-up): it
gets the script's "side" entry (default: the text "none", 10 tokens in, 1 out) without using up
a turn, and is logged with "side": true, as is /v1/messages/count_tokens (answered
{"input_tokens": 10}).
Every request is appended to the log file as a JSON line: {"n", "path", "headers", "body",
"raw"} (raw: the body's text as received, for byte-exact assertions).
With --port 0 the chosen port is printed as stdout's first line.
"""
import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


SIDE_DEFAULT = {"thought": "none", "usage": {"in": 10, "out": 1}}


def is_side_call(path, body):
    if not isinstance(body, dict):
        return False
    if body.get("tools") == []:
        return True
    # Claude Code's warm-up and token-count calls offer tools but have no system prompt.
    return path.split("?", 1)[0].endswith("/messages") and "system" not in body


class Script:
    def __init__(self, path, log_path):
        with open(path) as f:
            data = json.load(f)
        self.entries = data.get("turns", []) if isinstance(data, dict) else data
        self.by_marker = data.get("by_marker", {}) if isinstance(data, dict) else {}
        self.taken = {}  # marker -> entries taken
        self.side = data.get("side", SIDE_DEFAULT) if isinstance(data, dict) else SIDE_DEFAULT
        self.log_path = log_path
        self.lock = threading.Lock()
        self.n = 0

    def log_side(self, path, headers, body):
        with self.lock:
            line = {"n": self.n, "path": path, "headers": headers, "body": body, "side": True}
            with open(self.log_path, "a") as f:
                f.write(json.dumps(line) + "\n")

    def take(self, path, headers, body, raw):
        side = is_side_call(path, body)
        with self.lock:
            n = self.n
            if not side:
                self.n += 1
            line = {"n": n, "path": path, "headers": headers, "body": body, "raw": raw}
            if side:
                line["side"] = True
            with open(self.log_path, "a") as f:
                f.write(json.dumps(line) + "\n")
            if side:
                return n, self.side
            for marker, entries in self.by_marker.items():
                if marker in raw:
                    k = self.taken.get(marker, 0)
                    self.taken[marker] = k + 1
                    return n, (entries[k] if k < len(entries) else None)
            return n, (self.entries[n] if n < len(self.entries) else None)


def pieces(text, size):
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def args_text(call):
    return call["raw"] if "raw" in call else json.dumps(call.get("arguments", {}))


def call_id(call, n, i, prefix):
    return call.get("id") or "%s_%d_%d" % (prefix, n, i)


def usage_of(entry):
    u = entry.get("usage", {})
    return u.get("in", 0), u.get("out", 0)


# --- OpenAI -------------------------------------------------------------------------------

def openai_message(entry, n):
    calls = entry.get("tool_calls", [])
    msg = {"role": "assistant", "content": entry.get("thought") or None}
    if calls:
        msg["tool_calls"] = [{"id": call_id(c, n, i, "call"), "type": "function",
                              "function": {"name": c["name"], "arguments": args_text(c)}}
                             for i, c in enumerate(calls)]
    tin, tout = usage_of(entry)
    return {"id": "chatcmpl-%d" % n, "object": "chat.completion", "model": "fake",
            "choices": [{"index": 0, "message": msg,
                         "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": {"prompt_tokens": tin, "completion_tokens": tout,
                      "total_tokens": tin + tout}}


def openai_events(entry, n):
    def chunk(delta, finish=None):
        return {"id": "chatcmpl-%d" % n, "object": "chat.completion.chunk", "model": "fake",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    yield chunk({"role": "assistant", "content": ""})
    if entry.get("thought"):
        for p in pieces(entry["thought"], 5):
            yield chunk({"content": p})
    calls = entry.get("tool_calls", [])
    for i, c in enumerate(calls):
        yield chunk({"tool_calls": [{"index": i, "id": call_id(c, n, i, "call"),
                                     "type": "function",
                                     "function": {"name": c["name"], "arguments": ""}}]})
        for p in pieces(args_text(c), 7):
            yield chunk({"tool_calls": [{"index": i, "function": {"arguments": p}}]})
    yield chunk({}, "tool_calls" if calls else "stop")
    tin, tout = usage_of(entry)
    yield {"id": "chatcmpl-%d" % n, "object": "chat.completion.chunk", "choices": [],
           "usage": {"prompt_tokens": tin, "completion_tokens": tout,
                     "total_tokens": tin + tout}}


def openai_sse(entry, n):
    for ev in openai_events(entry, n):
        yield "data: %s\n\n" % json.dumps(ev)
    yield "data: [DONE]\n\n"


def openai_error(status, message):
    return {"error": {"message": message, "type": "fake_error", "code": str(status)}}


# --- Anthropic ----------------------------------------------------------------------------

def anthropic_input(c):
    if "raw" in c:
        return c["raw"]
    return c.get("arguments", {})


def anthropic_message(entry, n):
    content = []
    if entry.get("thought"):
        content.append({"type": "text", "text": entry["thought"]})
    for i, c in enumerate(entry.get("tool_calls", [])):
        content.append({"type": "tool_use", "id": call_id(c, n, i, "toolu"), "name": c["name"],
                        "input": anthropic_input(c)})
    tin, tout = usage_of(entry)
    return {"id": "msg_%d" % n, "type": "message", "role": "assistant", "model": "fake",
            "content": content,
            "stop_reason": "tool_use" if entry.get("tool_calls") else "end_turn",
            "usage": {"input_tokens": tin, "output_tokens": tout}}


def anthropic_events(entry, n):
    tin, tout = usage_of(entry)
    yield "message_start", {"type": "message_start", "message": {
        "id": "msg_%d" % n, "type": "message", "role": "assistant", "content": [],
        "model": "fake", "usage": {"input_tokens": tin, "output_tokens": 1}}}
    yield "ping", {"type": "ping"}
    index = 0
    if entry.get("thought"):
        yield "content_block_start", {"type": "content_block_start", "index": index,
                                      "content_block": {"type": "text", "text": ""}}
        for p in pieces(entry["thought"], 5):
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "text_delta", "text": p}}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        index += 1
    for i, c in enumerate(entry.get("tool_calls", [])):
        yield "content_block_start", {"type": "content_block_start", "index": index,
                                      "content_block": {"type": "tool_use",
                                                        "id": call_id(c, n, i, "toolu"),
                                                        "name": c["name"], "input": {}}}
        for p in pieces(args_text(c), 7):
            yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                          "delta": {"type": "input_json_delta",
                                                    "partial_json": p}}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
        index += 1
    stop = "tool_use" if entry.get("tool_calls") else "end_turn"
    yield "message_delta", {"type": "message_delta", "delta": {"stop_reason": stop},
                            "usage": {"output_tokens": tout}}
    yield "message_stop", {"type": "message_stop"}


def anthropic_sse(entry, n):
    for name, data in anthropic_events(entry, n):
        yield "event: %s\ndata: %s\n\n" % (name, json.dumps(data))


def anthropic_error(status, message):
    kind = {401: "authentication_error", 429: "rate_limit_error", 529: "overloaded_error"}
    return {"type": "error", "error": {"type": kind.get(status, "api_error"), "message": message}}


# --- OpenAI Responses ---------------------------------------------------------------------

def responses_output(entry, n):
    out = []
    if entry.get("thought"):
        out.append({"type": "message", "id": "msg_%d" % n, "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": entry["thought"],
                                 "annotations": []}]})
    for i, c in enumerate(entry.get("tool_calls", [])):
        item = {"type": "function_call", "id": "fc_%d_%d" % (n, i), "status": "completed",
                "call_id": call_id(c, n, i, "call"), "name": c["name"],
                "arguments": args_text(c)}
        if c.get("namespace"):  # a tool of a namespace the request declared (Codex's MCP tools)
            item["namespace"] = c["namespace"]
        out.append(item)
    return out


def responses_usage(entry):
    tin, tout = usage_of(entry)
    return {"input_tokens": tin, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": tout, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": tin + tout}


def responses_object(entry, n, status="completed"):
    return {"id": "resp_%d" % n, "object": "response", "created_at": 0, "status": status,
            "model": "fake", "output": responses_output(entry, n) if status == "completed" else [],
            "usage": responses_usage(entry) if status == "completed" else None}


def responses_events(entry, n):
    seq = [0]

    def ev(kind, **fields):
        fields["type"] = kind
        fields["sequence_number"] = seq[0]
        seq[0] += 1
        return kind, fields
    yield ev("response.created", response=responses_object(entry, n, "in_progress"))
    yield ev("response.in_progress", response=responses_object(entry, n, "in_progress"))
    for index, item in enumerate(responses_output(entry, n)):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            yield ev("response.output_item.added", output_index=index,
                     item=dict(item, status="in_progress", content=[]))
            yield ev("response.content_part.added", item_id=item["id"], output_index=index,
                     content_index=0, part={"type": "output_text", "text": "", "annotations": []})
            for p in pieces(text, 5):
                yield ev("response.output_text.delta", item_id=item["id"], output_index=index,
                         content_index=0, delta=p)
            yield ev("response.output_text.done", item_id=item["id"], output_index=index,
                     content_index=0, text=text)
            yield ev("response.content_part.done", item_id=item["id"], output_index=index,
                     content_index=0, part=item["content"][0])
        else:
            yield ev("response.output_item.added", output_index=index,
                     item=dict(item, status="in_progress", arguments=""))
            for p in pieces(item["arguments"], 7):
                yield ev("response.function_call_arguments.delta", item_id=item["id"],
                         output_index=index, delta=p)
            yield ev("response.function_call_arguments.done", item_id=item["id"],
                     output_index=index, arguments=item["arguments"])
        yield ev("response.output_item.done", output_index=index, item=item)
    yield ev("response.completed", response=responses_object(entry, n))


def responses_sse(entry, n):
    for name, data in responses_events(entry, n):
        yield "event: %s\ndata: %s\n\n" % (name, json.dumps(data))


# --- HTTP ---------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    script = None
    # Headers and body go out in several writes; without TCP_NODELAY each response waits out
    # the client's delayed ACK (~40 ms).
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length).decode("utf-8", "replace")
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        headers = {k.lower(): v for k, v in self.headers.items()}
        route = self.path.split("?", 1)[0].rstrip("/")
        if route.endswith("/messages/count_tokens"):  # Claude Code counts before it sends
            self.script.log_side(self.path, headers, body)
            return self.send_json(200, {"input_tokens": 10}, {})
        n, entry = self.script.take(self.path, headers, body, raw)
        anthropic = route.endswith("/messages")
        responses = route.endswith("/responses")
        if not route.endswith(("/chat/completions", "/messages", "/responses")):
            return self.send_json(404, openai_error(404, "no route " + self.path), {})
        if entry is None:
            return self.send_error_entry({"status": 400, "message": "fake llm: script exhausted"},
                                         anthropic)
        if "status" in entry:
            return self.send_error_entry(entry, anthropic)
        stream = isinstance(body, dict) and body.get("stream") is True
        if entry.get("disconnect"):
            return self.send_cut_off()
        if "hang" in entry:
            time.sleep(entry["hang"])
            return self.send_error_entry({"status": 503, "message": "hung"}, anthropic)
        if "replay" in entry:
            return self.send_replay(entry)
        if responses:
            if not stream:
                return self.send_json(200, responses_object(entry, n), {})
            return self.send_stream(responses_sse(entry, n))
        if not stream:
            msg = anthropic_message(entry, n) if anthropic else openai_message(entry, n)
            return self.send_json(200, msg, {})
        self.send_stream(anthropic_sse(entry, n) if anthropic else openai_sse(entry, n))

    def send_error_entry(self, entry, anthropic):
        status = entry["status"]
        message = entry.get("message", "fake error %d" % status)
        extra = {}
        if "retry_after" in entry:
            extra["Retry-After"] = str(entry["retry_after"])
        body = anthropic_error(status, message) if anthropic else openai_error(status, message)
        self.send_json(status, body, extra)

    def send_json(self, status, obj, extra):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def send_stream(self, events):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for ev in events:
            data = ev.encode()
            # Split each event across two writes so clients must reassemble lines.
            half = len(data) // 2
            self.write_chunk(data[:half])
            self.write_chunk(data[half:])
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def send_replay(self, entry):
        with open(entry["replay"], "rb") as f:
            data = f.read()
        newline = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}.get(entry.get("newline"))
        if newline is not None:
            data = data.replace(b"\r\n", b"\n").replace(b"\n", newline)
        sse = entry["replay"].endswith(".sse")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if sse else "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        size = entry.get("chunk") or max(1, len(data) // 16)
        for i in range(0, len(data), size):
            self.write_chunk(data[i:i + size])
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def send_cut_off(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b'{"choices": [')
        self.wfile.flush()
        self.close_connection = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--script", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    Handler.script = Script(args.script, args.log)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
