# An MCP server (stdio, JSON-RPC one object per line) in Python with the standard library only,
# for the tests and agent_bench: it lists its tools over two pages; `echo` and `late` answer
# with their arguments, `slow` answers after 30 s (on a thread: other calls go on), `crash` ends
# the server (exit status 3) without an answer.
import json, sys, threading, time
lock = threading.Lock()
def send(m):
    with lock:
        sys.stdout.write(json.dumps(m) + "\n"); sys.stdout.flush()
def answer(rid, name, arguments):
    text = name + ": " + json.dumps(arguments, sort_keys=True)
    send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": text}]}})
def tool(name):
    return {"name": name, "description": name + " tool",
            "inputSchema": {"type": "object", "properties": {"x": {"type": "integer"}}}}
for line in sys.stdin:
    m = json.loads(line)
    method, rid, params = m.get("method"), m.get("id"), m.get("params") or {}
    if rid is None:
        continue
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": rid, "result": {"protocolVersion": "2025-06-18",
              "capabilities": {"tools": {}}, "serverInfo": {"name": "py", "version": "1"}}})
    elif method == "tools/list":
        if params.get("cursor") == "p2":
            send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [tool("late")]}})
        else:
            send({"jsonrpc": "2.0", "id": rid, "result": {
                "tools": [tool("echo"), tool("slow"), tool("crash")], "nextCursor": "p2"}})
    elif method == "tools/call":
        name = params["name"]
        if name == "crash":
            sys.stderr.write("crashing on purpose\n"); sys.stderr.flush()
            sys.exit(3)
        if name == "slow":
            threading.Thread(target=lambda r=rid: (time.sleep(30), answer(r, "slow", {})),
                             daemon=True).start()
            continue
        answer(rid, name, params.get("arguments"))
    else:
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": "no " + method}})
