#!/usr/bin/env bash
# make demo: create a small git repo, start a kiln server, run a mock-agent task on it end to end
# (sandboxed, streamed, recorded), print the diff and the web dashboard's sign-in link. From a
# terminal the server keeps running for the dashboard until Ctrl-C.
set -euo pipefail
KILN=${1:-build/kiln}
KILN=$(readlink -f "$KILN")
if [ "$(id -u)" != 0 ]; then
  echo "== not root: the sandbox runs in rootless mode (user namespaces; docs/runtime.md)" >&2
fi

work=$(mktemp -d /tmp/kiln-demo.XXXXXX)
repo="$work/hello"
mkdir -p "$repo"
cd "$repo"
git init -q -b main .
cat > hello.py <<'PY'
def greet(name):
    return "hello, " + name
PY
cat > test_hello.py <<'PY'
from hello import greet
assert greet("kiln") == "hello, kiln"
print("1 test passed")
PY
printf 'test:\n\tpython3 test_hello.py\n' > Makefile
printf '__pycache__/\n' > .gitignore
printf 'Run `make test` before you finish; keep every function short.\n' > AGENTS.md
git add -A
git -c user.name=demo -c user.email=demo@example.com commit -qm "hello: first version"

echo "== kiln demo: repo $repo, data dir $work/data"
export KILN_DATA_DIR="$work/data"
mkdir -p "$KILN_DATA_DIR"
"$KILN" serve --listen "${KILN_LISTEN:-127.0.0.1:0}" --allow-local-repos "$work" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
for _ in $(seq 1 300); do
  "$KILN" ui >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.1
done
status=0
"$KILN" run --repo "$repo" "Add a farewell function next to greet" || status=$?
echo "== done (exit $status). Data dir kept at $work/data; remove $work when done."
"$KILN" ui
if [ -t 0 ]; then
  echo "== the server keeps running for the dashboard; Ctrl-C stops it"
  wait $server || true
else
  echo "== not run from a terminal: the server stops now (run it from one to keep the dashboard)"
fi
exit $status
