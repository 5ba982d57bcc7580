// Real processes for the browser tests: a git repo, the fake LLM server
// (tests/support/fake_llm_server.py), `kiln serve` (like tests/support/kiln_process.cc), and a TCP
// proxy in front of it whose connections the tests can cut. Plus polling with deadlines.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const readline = require('node:readline');

const SOURCE_DIR = process.env.KILN_SOURCE_DIR || path.resolve(__dirname, '../..');
const KILN_BINARY = process.env.KILN_BINARY || path.join(SOURCE_DIR, 'build/kiln');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn() until it returns a truthy value; throws `what` (+ the last value) at the deadline.
async function waitFor(what, fn, { timeoutMs = 60000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
    }
    await sleep(intervalMs);
  }
}

// A repo whose test fails until add() is fixed (as in tests/integration/agent_e2e_test.cc).
function makeBuggyRepo(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const git = (...args) => execFileSync('git', args, { cwd: dir, stdio: 'pipe' });
  git('init', '-q', '-b', 'main');
  git('config', 'user.email', 't@example.com');
  git('config', 'user.name', 't');
  fs.writeFileSync(path.join(dir, 'calc.py'), 'def add(a, b):\n    return a - b\n');
  fs.writeFileSync(
    path.join(dir, 'test_calc.py'),
    'import sys\nimport calc\nif calc.add(2, 3) != 5:\n    print("FAIL: add(2, 3) =", calc.add(2, 3))\n' +
      '    sys.exit(1)\nprint("OK")\n',
  );
  fs.writeFileSync(path.join(dir, '.gitignore'), '__pycache__/\n');
  git('add', '-A');
  git('commit', '-q', '-m', 'init');
}

// Every child still running; killed if the test process is interrupted (ctest's timeout, ^C), so
// no `kiln serve` or fake LLM outlives the run.
const running = new Set();
function stopAllAndExit(code) {
  const waits = [...running].map((c) => c.stop());
  const timer = setTimeout(() => process.exit(code), 15000);
  Promise.all(waits).finally(() => {
    clearTimeout(timer);
    process.exit(code);
  });
}
process.once('SIGTERM', () => stopAllAndExit(143));
process.once('SIGINT', () => stopAllAndExit(130));
process.on('exit', () => {
  for (const c of running) c.proc.kill('SIGKILL');
});

class Child {
  constructor(name, proc, logPath) {
    running.add(this);
    proc.on('exit', () => running.delete(this));
    this.name = name;
    this.proc = proc;
    this.logPath = logPath;
    this.exited = new Promise((resolve) => proc.on('exit', (code, sig) => resolve({ code, sig })));
  }
  log() {
    try {
      return fs.readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }
  async stop() {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 20000);
    await this.exited;
    clearTimeout(t);
  }
}

// The fake LLM server replaying `script` ({by_marker: {...}}); resolves once it listens.
async function startFakeLlm(dir, script) {
  const scriptPath = path.join(dir, 'llm-script.json');
  fs.writeFileSync(scriptPath, JSON.stringify(script));
  const logPath = path.join(dir, 'llm.log');
  const proc = spawn(
    'python3',
    [path.join(SOURCE_DIR, 'tests/support/fake_llm_server.py'), '--script', scriptPath, '--log',
      path.join(dir, 'llm-requests.jsonl'), '--port', '0'],
    { stdio: ['ignore', 'pipe', fs.openSync(logPath, 'a')] },
  );
  const child = new Child('fake-llm', proc, logPath);
  const port = await new Promise((resolve, reject) => {
    const rl = readline.createInterface({ input: proc.stdout });
    rl.once('line', (line) => resolve(Number(line)));
    proc.once('exit', () => reject(new Error('fake LLM server exited:\n' + child.log())));
  });
  child.url = 'http://127.0.0.1:' + port;
  return child;
}

// `kiln serve` on a free port with its own data dir; it reads local repos only under `repos`.
async function startKiln(dir, { llmUrl, args = [], repos = dir } = {}) {
  const dataDir = path.join(dir, 'data');
  fs.mkdirSync(dataDir, { recursive: true });
  const logPath = path.join(dir, 'kiln-serve.log');
  const env = {
    ...process.env,
    OPENAI_BASE_URL: llmUrl + '/v1',
    OPENAI_API_KEY: 'sk-test',
    KILN_LLM_RETRY_BASE_MS: '10',
  };
  const out = fs.openSync(logPath, 'a');
  const proc = spawn(KILN_BINARY, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, '--allow-local-repos', repos, ...args], {
    env,
    stdio: ['ignore', out, out],
  });
  const kiln = new Child('kiln serve', proc, logPath);
  const info = await waitFor(
    'kiln serve to write server.json',
    () => {
      if (proc.exitCode !== null) throw new Error('kiln serve exited:\n' + kiln.log());
      const j = JSON.parse(fs.readFileSync(path.join(dataDir, 'server.json'), 'utf8'));
      return j.pid === proc.pid ? j : null;
    },
    { timeoutMs: 30000, intervalMs: 50 },
  );
  kiln.url = info.url;
  kiln.port = Number(info.url.slice(info.url.lastIndexOf(':') + 1));
  kiln.token = fs.readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
  await waitFor('kiln serve to answer /healthz', async () => (await fetch(kiln.url + '/healthz')).ok, {
    timeoutMs: 30000,
  });
  kiln.api = (method, p, body) => apiCall(kiln.url, kiln.token, method, p, body);
  return kiln;
}

async function apiCall(base, token, method, p, body) {
  const res = await fetch(base + '/api/v1' + p, {
    method,
    headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, json, text };
}

// A TCP proxy to `port`: cut() drops every open connection at once, as a network failure
// would. Remembers each connection's first bytes (the request head) for the tests to inspect.
async function startProxy(port) {
  const sockets = new Set();
  const heads = [];
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    let seen = '';
    client.on('data', (d) => {
      if (seen.length < 4096) {
        seen += d.toString('latin1');
        const end = seen.indexOf('\r\n\r\n');
        if (end >= 0) {
          heads.push(seen.slice(0, end));
          seen = '';
        }
      }
    });
    client.pipe(upstream);
    // With `trickle` set, the server's bytes go on in small separate writes, so the page must
    // put events together across reads (and a cut lands mid-event).
    client.setNoDelay(true);
    upstream.on('data', (d) => {
      const n = proxy.trickle || d.length;
      for (let i = 0; i < d.length; i += n) client.write(d.subarray(i, i + n));
    });
    upstream.on('end', () => client.end());
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', close);
    upstream.on('error', close);
    client.on('close', close);
    upstream.on('close', close);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const proxy = {
    trickle: 0,
    url: 'http://127.0.0.1:' + server.address().port,
    heads,
    cut() {
      const n = sockets.size;
      for (const s of sockets) s.destroy();
      sockets.clear();
      return n;
    },
    close: () => new Promise((r) => server.close(r)),
  };
  return proxy;
}

module.exports = { waitFor, sleep, makeBuggyRepo, startFakeLlm, startKiln, startProxy, apiCall, SOURCE_DIR };
