// The web dashboard in a real browser: Debian's chromium driven by playwright-core against a
// real `kiln serve` with real sandboxes and the fake LLM server (issue 14's acceptance list).
// One browser and one shared server; a second server holds the 500-job list. Screenshots of
// every page at 1280x800 and 390x844 go to $KILN_ARTIFACTS/web/. Run by ctest (web.dashboard):
//   NODE_PATH=build/web/node_modules KILN_BINARY=build/kiln node tests/web/dashboard_test.cjs
// Exit 0 = all passed, 1 = a test failed, 77 = skipped (reason printed).
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./harness.cjs');

const CHROMIUM = process.env.KILN_CHROMIUM || '/usr/bin/chromium';
const ARTIFACTS = path.join(process.env.KILN_ARTIFACTS || path.join(h.SOURCE_DIR, 'build/test-artifacts'), 'web');
const VIEWPORTS = [
  { width: 1280, height: 800 },
  { width: 390, height: 844 },
];

// --- scripted model turns (tests/support/fake_llm_server.py) ---------------------------------
const turn = (thought, name, args) => ({
  thought,
  tool_calls: [{ name, arguments: args }],
  usage: { in: 1000, out: 50 },
});
const bash = (command) => turn('', 'bash', { command });
const finish = (summary) => turn('Done.', 'finish', { summary });
const FIX = { path: 'calc.py', old_str: 'return a - b', new_str: 'return a + b' };
const ROWS = (from, to) =>
  `for i in $(seq ${from} ${to}); do printf '\\033[3%dmrow %05d\\033[0m\\n' $((i % 6 + 1)) $i; done`;

const SCRIPT = {
  by_marker: {
    '[[web-run]]': [
      bash("for i in $(seq 1 60); do printf '\\033[32mline %02d\\033[0m ok\\n' $i; sleep 0.1; done"),
      turn('add() subtracts; fix it.', 'edit_file', FIX),
      bash('python3 -B test_calc.py'),
      finish('add() returned a - b; it now returns a + b.'),
      // the follow-up after Continue
      bash('echo follow-up ran'),
      finish('Follow-up done.'),
    ],
    '[[web-ask]]': [turn('I need a decision.', 'ask_user', { question: 'Which greeting should I use?' }), finish('Used the greeting you chose.')],
    '[[web-gate]]': [turn('', 'edit_file', FIX), finish('Fixed add() for the gate.')],
    '[[web-stop]]': [bash('echo started; sleep 300')],
    '[[web-big]]': [bash(ROWS(1, 5000)), bash(ROWS(5001, 10000)), finish('Printed 10000 rows.')],
    '[[web-block]]': [bash('sleep 600'), bash('sleep 600'), bash('sleep 600')],
  },
};

// --- a tiny serial runner ---------------------------------------------------------------------
const tests = [];
const test = (name, fn) => tests.push({ name, fn });
const figures = [];
const figure = (name, value, unit) => {
  figures.push({ name, value, unit });
  console.log(`  figure: ${name} = ${value} ${unit}`);
};
function assert(cond, message) {
  if (!cond) throw new Error('assertion failed: ' + message);
}

// --- page helpers -----------------------------------------------------------------------------
let env; // { dir, repo, llm, kiln, proxy, browser }

async function newPage(viewport = VIEWPORTS[0]) {
  const context = await env.browser.newContext({ viewport });
  // Long tasks (main thread busy > 50 ms), from the first script on; read by longestTask().
  await context.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longTasks.push(e.duration);
    }).observe({ type: 'longtask', buffered: true });
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.log('  page error:', e.message));
  return page;
}

async function signedInPage(base = env.proxy.url, token = env.kiln.token) {
  const page = await newPage();
  await page.goto(base + '/jobs#token=' + encodeURIComponent(token));
  await page.getByRole('heading', { name: 'Jobs', exact: true }).waitFor();
  return page;
}

async function shot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const original = page.viewportSize();
  for (const vp of VIEWPORTS) {
    await page.setViewportSize(vp);
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    await page.screenshot({ path: path.join(ARTIFACTS, `${name}-${vp.width}x${vp.height}.png`), fullPage: false });
  }
  await page.setViewportSize(original);
}

// The terminal's lines, from xterm's buffer (the container's kilnTerminal, web/src/pages/terminal.jsx).
async function terminalLines(page) {
  return page.evaluate(() => {
    const el = document.querySelector('.terminal');
    if (!el || !el.kilnTerminal) return [];
    const b = el.kilnTerminal.buffer.active;
    const out = [];
    for (let i = 0; i < b.length; i++) out.push(b.getLine(i).translateToString(true));
    while (out.length && out[out.length - 1] === '') out.pop();
    return out;
  });
}

async function waitTerminal(page, what, pred, timeoutMs = 60000) {
  return h.waitFor(what, async () => {
    const lines = await terminalLines(page);
    return pred(lines) ? lines : null;
  }, { timeoutMs, intervalMs: 100 });
}

async function statusText(page) {
  return (await page.locator('.page-head .badge').first().textContent()).trim();
}

async function waitStatus(page, status, timeoutMs = 90000) {
  await h.waitFor(`the page to show ${status}`, async () => (await statusText(page)).endsWith(status), { timeoutMs });
}

async function createJob(kiln, marker, extra = {}) {
  const r = await kiln.api('POST', '/jobs', {
    repoUrl: env.repo,
    taskDesc: `${marker} Fix the failing test in test_calc.py`,
    agent: 'openai',
    model: 'gpt-4o',
    ...extra,
  });
  assert(r.status === 201, 'create job: ' + r.text);
  return r.json.jobId;
}

async function jobStatus(kiln, id) {
  return (await kiln.api('GET', '/jobs/' + id)).json.status;
}

async function waitJob(kiln, id, statuses, timeoutMs = 90000) {
  return h.waitFor(`job ${id} to be ${statuses}`, async () => {
    const s = await jobStatus(kiln, id);
    return statuses.includes(s) ? s : null;
  }, { timeoutMs, intervalMs: 100 });
}

// The longest main-thread task since the page loaded (or since the last call), in ms.
async function longestTask(page) {
  return page.evaluate(() => {
    const max = Math.round(Math.max(0, ...window.__longTasks));
    window.__longTasks = [];
    return max;
  });
}

// --- the tests --------------------------------------------------------------------------------
const state = {};

test('a #token= link signs in once and leaves the address bar', async () => {
  const page = await newPage();
  await page.goto(env.proxy.url + '/#token=' + encodeURIComponent(env.kiln.token));
  await page.getByRole('heading', { name: 'Jobs', exact: true }).waitFor();
  assert(!page.url().includes('token'), 'token still in the URL: ' + page.url());
  assert((await page.evaluate(() => localStorage.getItem('kiln.token'))) === env.kiln.token, 'token kept in storage');
  // The history entry has no token either: back/forward never shows it.
  assert(!(await page.evaluate(() => location.hash)).includes('token'), 'hash cleared');
  await page.reload();
  await page.getByRole('heading', { name: 'Jobs', exact: true }).waitFor();
  await shot(page, 'jobs-empty');
  await page.context().close();
});

test('bad input shows the API error next to its field', async () => {
  const page = await signedInPage();
  await page.getByRole('link', { name: 'New job', exact: true }).first().click();
  await page.getByRole('heading', { name: 'New job' }).waitFor();
  await shot(page, 'new-job');
  const cases = [
    { fill: { '#f-repoUrl': env.repo, '#f-taskDesc': '' }, field: 'taskDesc', body: { repoUrl: env.repo, taskDesc: '', agent: 'mock' } },
    { fill: { '#f-repoUrl': 'ftp://example.com/r.git', '#f-taskDesc': 'x' }, field: 'repoUrl', body: { repoUrl: 'ftp://example.com/r.git', taskDesc: 'x', agent: 'mock' } },
    { fill: { '#f-repoUrl': env.repo, '#f-taskDesc': 'x', '#f-limits-maxSteps': '-1' }, field: 'limits-maxSteps', body: { repoUrl: env.repo, taskDesc: 'x', agent: 'mock', limits: { maxSteps: -1 } } },
  ];
  for (const c of cases) {
    const want = await env.kiln.api('POST', '/jobs', c.body);
    assert(want.status === 400, 'the API refuses ' + JSON.stringify(c.body) + ': ' + want.text);
    for (const [sel, v] of Object.entries(c.fill)) await page.fill(sel, v);
    await page.getByRole('button', { name: 'Create job' }).click();
    const err = page.locator(`#f-${c.field}-error`);
    await err.waitFor();
    const text = (await err.textContent()).replace(/^⚠\s*/, '');
    assert(text === want.json.error.message, `error next to ${c.field}: "${text}" vs API "${want.json.error.message}"`);
    assert((await page.getAttribute(`#f-${c.field}`, 'aria-invalid')) === 'true', c.field + ' marked invalid');
    assert((await page.locator('.field-error').count()) === 1, 'one error shown');
  }
  await shot(page, 'new-job-errors');
  const jobs = await env.kiln.api('GET', '/jobs');
  assert(jobs.json.jobs.length === 0, 'nothing was created');
  await page.context().close();
});

test('create a job from the form (double click submits once); terminal lines appear live', async () => {
  const page = await signedInPage();
  env.proxy.trickle = 7; // until the end of the cut test
  await page.goto(env.proxy.url + '/jobs/new');
  await page.fill('#f-repoUrl', env.repo);
  await page.fill('#f-taskDesc', '[[web-run]] Fix the failing test in test_calc.py');
  await page.selectOption('#f-agent', 'openai');
  await page.fill('#f-model', 'gpt-4o');
  await page.fill('#f-limits-maxSteps', '20');
  await page.getByRole('button', { name: 'Create job' }).dblclick();
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
  const id = page.url().split('/').pop();
  state.runId = id;
  state.runPage = page;
  const all = await env.kiln.api('GET', '/jobs');
  assert(all.json.jobs.length === 1, 'one job created by a double click, got ' + all.json.jobs.length);
  const job = (await env.kiln.api('GET', '/jobs/' + id)).json;
  assert(job.limits.maxSteps === 20 && job.agent === 'openai' && job.model === 'gpt-4o', 'form fields sent: ' + JSON.stringify(job));
  // Lines arrive while the command runs (it prints one every 100 ms).
  const early = await waitTerminal(page, 'the first terminal lines', (l) => l.some((x) => x.startsWith('line 05')));
  state.beforeCut = early.filter((l) => /^line \d\d/.test(l)).length;
  assert((await jobStatus(env.kiln, id)) === 'RUNNING', 'job still running while lines arrive');
  // ANSI colour kept: "line" is green (palette 2).
  const green = await page.evaluate(() => {
    const b = document.querySelector('.terminal').kilnTerminal.buffer.active;
    for (let i = 0; i < b.length; i++) {
      const line = b.getLine(i);
      if (line.translateToString(true).startsWith('line 0')) {
        const cell = line.getCell(0);
        return cell.isFgPalette() && cell.getFgColor() === 2;
      }
    }
    return false;
  });
  assert(green, 'terminal keeps ANSI colours');
});

test('cut the stream mid-job: it resumes with no duplicate or missing line', async () => {
  const page = state.runPage;
  const headsBefore = env.proxy.heads.length;
  const cut = env.proxy.cut();
  assert(cut > 0, 'there was a connection to cut');
  assert(state.beforeCut < 60, 'the cut came mid-command');
  const lines = await waitTerminal(page, 'all 60 lines after the cut', (l) => l.some((x) => x.startsWith('line 60')));
  const numbered = lines.filter((l) => /^line \d\d ok$/.test(l));
  const want = Array.from({ length: 60 }, (_, i) => `line ${String(i + 1).padStart(2, '0')} ok`);
  assert(JSON.stringify(numbered) === JSON.stringify(want), 'each line once, in order:\n' + numbered.join('\n'));
  // The reconnect asked for the events after the last one it had.
  const resumed = env.proxy.heads.slice(headsBefore).find((hd) => /\/stream /.test(hd) && /last-event-id: \d+/i.test(hd));
  assert(resumed, 'a stream request with Last-Event-ID after the cut; saw:\n' + env.proxy.heads.slice(headsBefore).join('\n---\n'));
  assert(!/token/i.test(resumed.split('\r\n')[0]), 'the token is not in the stream URL');
  await waitStatus(page, 'COMPLETED');
  env.proxy.trickle = 0;
});

test('the diff renders side by side and unified; steps and summary shown', async () => {
  const page = state.runPage;
  await page.getByText('add() returned a - b; it now returns a + b.').first().waitFor();
  await page.getByText('kiln/' + state.runId).first().waitFor();
  await page.getByRole('tab', { name: /Steps/ }).click();
  const tools = await page.locator('.step-tool').allTextContents();
  assert(JSON.stringify(tools.slice(0, 4)) === JSON.stringify(['bash', 'edit_file', 'bash', 'finish']), 'steps: ' + tools);
  await page.locator('.step summary').nth(1).click();
  await page.getByText('add() subtracts; fix it.').first().waitFor();
  await page.getByRole('tab', { name: 'Diff' }).click();
  await page.locator('.d2h-file-side-diff').first().waitFor();
  const sbs = await page.locator('.diff-body').textContent();
  assert(sbs.includes('return a + b') && sbs.includes('return a - b'), 'side-by-side diff has both sides');
  await shot(page, 'job-diff');
  await page.getByLabel('Unified').check();
  await page.locator('.d2h-file-diff').first().waitFor();
  assert((await page.locator('.d2h-file-side-diff').count()) === 0, 'unified replaces side by side');
  await page.getByRole('tab', { name: 'Terminal' }).click();
  await shot(page, 'job');
});

test('continue a finished job with a follow-up', async () => {
  const page = state.runPage;
  await page.fill('#follow-up', 'Now print something.');
  await page.getByRole('button', { name: 'Continue' }).click();
  await waitTerminal(page, 'the follow-up output', (l) => l.some((x) => x === 'follow-up ran'));
  await page.getByText('Follow-up done.').first().waitFor({ timeout: 90000 });
  await waitStatus(page, 'COMPLETED');
  const lines = await terminalLines(page);
  assert(lines.filter((l) => l === 'line 60 ok').length === 1, 'old output not repeated after continue');
  await page.context().close();
});

test('a PAUSED question waits first in the list; the reply completes the job', async () => {
  const id = await createJob(env.kiln, '[[web-ask]]');
  await waitJob(env.kiln, id, ['PAUSED']);
  const page = await signedInPage();
  const waiting = page.locator('.waiting');
  await waiting.getByRole('link').first().waitFor();
  assert((await waiting.locator('tbody tr').count()) === 1, 'one job waiting');
  await shot(page, 'jobs');
  await waiting.getByRole('link').first().click();
  await page.getByText('Which greeting should I use?').first().waitFor();
  await shot(page, 'job-question');
  await page.fill('#reply-text', 'Use hello please');
  await page.getByRole('button', { name: 'Send reply' }).click();
  await waitStatus(page, 'COMPLETED');
  await page.getByText('Used the greeting you chose.').first().waitFor();
  const reqs = fs.readFileSync(path.join(env.dir, 'llm-requests.jsonl'), 'utf8');
  assert(reqs.includes('Use hello please'), 'the model got the reply');
  await page.context().close();
});

test('approve a commit gate', async () => {
  const id = await createJob(env.kiln, '[[web-gate]]', { approvals: ['commit'] });
  await waitJob(env.kiln, id, ['PAUSED']);
  const page = await signedInPage();
  await page.goto(env.proxy.url + '/jobs/' + id);
  await page.getByRole('heading', { name: 'Approval needed: commit' }).waitFor();
  await page.getByText('Fixed add() for the gate.').first().waitFor();
  await shot(page, 'job-approval');
  await page.getByRole('button', { name: 'Approve commit' }).click();
  await waitStatus(page, 'COMPLETED');
  await page.getByText('kiln/' + id).first().waitFor();
  // The job's events: the approval was stored as approved, then the commit went ahead.
  const events = await (await fetch(`${env.kiln.url}/api/v1/jobs/${id}/stream`, {
    headers: { Authorization: 'Bearer ' + env.kiln.token },
  })).text();
  assert(/event: reply\ndata: .*"state":"approved"/.test(events), 'an approved reply event:\n' + events.slice(-2000));
  assert(/event: done\ndata: .*"commit":"[0-9a-f]{40}"/.test(events), 'committed after the approval');
  await page.context().close();
});

test('stop a running job', async () => {
  const id = await createJob(env.kiln, '[[web-stop]]');
  const page = await signedInPage();
  await page.goto(env.proxy.url + '/jobs/' + id);
  await waitTerminal(page, 'the command to start', (l) => l.includes('started'));
  await page.getByRole('button', { name: 'Stop job' }).click();
  await waitStatus(page, 'STOPPED');
  assert((await jobStatus(env.kiln, id)) === 'STOPPED', 'the server has it STOPPED');
  assert((await page.getByRole('button', { name: 'Stop job' }).count()) === 0, 'no Stop button once stopped');
  await page.context().close();
});

test('10,000 terminal lines stay responsive', async () => {
  const page = await signedInPage();
  const id = await createJob(env.kiln, '[[web-big]]');
  const t0 = Date.now();
  await page.goto(env.proxy.url + '/jobs/' + id);
  const rowRe = /^row \d{5}$/;
  await waitTerminal(page, '10,000 rows live', (l) => l.filter((x) => rowRe.test(x)).length >= 10000, 120000);
  figure('live job: 10,000 rows shown after the page opened', Date.now() - t0, 'ms');
  figure('live job: longest main-thread task', await longestTask(page), 'ms');
  await waitStatus(page, 'COMPLETED');
  // A reload replays every event into a fresh terminal.
  const t1 = Date.now();
  await page.reload();
  const lines = await waitTerminal(page, '10,000 rows replayed', (l) => l.filter((x) => rowRe.test(x)).length >= 10000, 60000);
  const replayMs = Date.now() - t1;
  figure('finished job: page load to 10,000 rows replayed', replayMs, 'ms');
  // Baseline, same run: the page of the 60-line job.
  const small = await newPage();
  await small.goto(env.proxy.url + '/jobs/' + state.runId + '#token=' + encodeURIComponent(env.kiln.token));
  const t3 = Date.now();
  await small.reload();
  await waitTerminal(small, 'the 60-line job replayed', (l) => l.includes('line 60 ok'));
  const baseMs = Date.now() - t3;
  figure('baseline: page load to a 60-line job replayed', baseMs, 'ms');
  figure('10,000 lines / 60 lines page load', (replayMs / Math.max(1, baseMs)).toFixed(2), 'x');
  await small.context().close();
  const rows = lines.filter((x) => rowRe.test(x));
  const firstWrong = rows.findIndex((x, i) => x !== 'row ' + String(i + 1).padStart(5, '0'));
  assert(rows.length === 10000 && firstWrong === -1,
    `every row once, in order: ${rows.length} rows, the first out of place at ${firstWrong} ` +
    `(${JSON.stringify(rows.slice(Math.max(0, firstWrong - 2), firstWrong + 3))}), ` +
    `${lines.length - rows.length} other lines: ${JSON.stringify(lines.filter((x) => !rowRe.test(x)).slice(0, 20))}`);
  // Responsive: a keystroke in the follow-up box shows up, and the terminal scrolls.
  const t2 = Date.now();
  await page.fill('#follow-up', 'typed while 10,000 lines are loaded');
  await page.evaluate(() => document.querySelector('.terminal').kilnTerminal.scrollToTop());
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(r)));
  figure('finished job: fill + scroll to top + a frame', Date.now() - t2, 'ms');
  figure('finished job: longest main-thread task (replay, fill, scroll)', await longestTask(page), 'ms');
  await shot(page, 'job-10000-lines');
  // The step's event has the first 4 KiB of the output; the full output comes from /steps.
  await page.getByRole('tab', { name: /Steps/ }).click();
  await page.locator('.step summary').first().click();
  await page.getByText('more bytes in /steps').first().waitFor();
  await page.getByRole('button', { name: 'Show the full output' }).first().click();
  await h.waitFor('the full output of step 1', async () =>
    (await page.locator('.step pre.output').first().textContent()).includes('row 05000\n'));
  await page.context().close();
});

test('a wrong token sees the sign-in page and nothing else', async () => {
  const page = await newPage();
  const apiAnswers = [];
  page.on('response', (r) => {
    if (r.url().includes('/api/')) apiAnswers.push(r.status());
  });
  await page.goto(env.proxy.url + '/jobs/' + state.runId + '#token=not-the-token');
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await page.getByText('not accepted').first().waitFor();
  await shot(page, 'signin');
  const text = await page.locator('body').innerText();
  assert(!text.includes('web-run') && !text.includes(state.runId) && !text.includes('Fix the failing'), 'no job data on the page');
  assert(apiAnswers.length > 0 && apiAnswers.every((s) => s === 401), 'every API answer was 401: ' + apiAnswers);
  assert((await page.evaluate(() => localStorage.getItem('kiln.token'))) === null, 'the bad token is not kept');
  // Typing a wrong token keeps it on the sign-in page too.
  await page.fill('#token', 'still-wrong');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#token-error').getByText('not accepted').waitFor();
  await page.fill('#token', env.kiln.token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByText('[[web-run]]').first().waitFor();
  await page.context().close();
});

test('keyboard: skip link, navigation and a job link are reachable with Tab', async () => {
  const page = await signedInPage();
  await page.getByRole('link', { name: /web-run/ }).first().waitFor();
  await page.keyboard.press('Tab');
  assert((await page.evaluate(() => document.activeElement.textContent)) === 'Skip to content', 'skip link first');
  let reached = false;
  for (let i = 0; i < 40 && !reached; i++) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => (document.activeElement.textContent || '').includes('[[web-run]]'));
  }
  assert(reached, 'a job link is reachable by Tab');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/jobs\/[0-9a-f-]{36}$/);
  await page.getByRole('tab', { name: 'Terminal' }).focus();
  await page.keyboard.press('ArrowRight');
  assert((await page.getAttribute('#tab-steps', 'aria-selected')) === 'true', 'arrow keys move between tabs');
  await page.goto(env.proxy.url + '/nodes');
  // A single server is a fleet of one: its own node is listed.
  await page.getByText('Nodes of this fleet').first().waitFor();
  await shot(page, 'nodes');
  // Dark and light follow the system setting.
  const background = () => page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert((await background()) === 'rgb(255, 255, 255)', 'light by default');
  await page.emulateMedia({ colorScheme: 'dark' });
  assert((await background()) === 'rgb(21, 24, 28)', 'dark when the system is dark');
  await page.goto(env.proxy.url + '/jobs/' + state.runId);
  await page.getByRole('tab', { name: 'Diff' }).click();
  await page.locator('.d2h-file-side-diff').first().waitFor();
  // The diff's text is light on the dark page (a fixed dark colour once made it unreadable).
  const rgb = await page.locator('.d2h-code-line-ctn').first().evaluate((el) => getComputedStyle(el).color);
  const [r, g, b] = rgb.match(/\d+/g).map(Number);
  assert(r + g + b > 400, 'diff text readable in dark mode: ' + rgb);
  await shot(page, 'job-diff-dark');
  await page.context().close();
});

test('500 jobs: the list loads and scrolls', async () => {
  const dir = path.join(env.dir, 'many');
  fs.mkdirSync(dir);
  const kiln = await h.startKiln(dir, { llmUrl: env.llm.url, args: ['--max-jobs', '1'], repos: env.dir });
  try {
    // One job runs (a long sleep); the rest wait in the queue; some are stopped.
    // Baseline, same server: the empty list.
    const empty = await signedInPage(kiln.url, kiln.token);
    const tb = Date.now();
    await empty.reload();
    await empty.getByText('No jobs yet.').waitFor();
    const emptyMs = Date.now() - tb;
    figure('baseline: empty job list shown after load', emptyMs, 'ms');
    figure('baseline: longest main-thread task, empty list', await longestTask(empty), 'ms');
    await empty.context().close();
    const ids = [];
    for (let i = 0; i < 500; i++) ids.push(await createJob(kiln, '[[web-block]]', { taskDesc: `[[web-block]] job ${i}` }));
    // The oldest job is the one running (the scheduler claims oldest first).
    for (let i = 1; i < 500; i += 4) await kiln.api('POST', `/jobs/${ids[i]}/stop`, {});
    const page = await signedInPage(kiln.url, kiln.token);
    const t0 = Date.now();
    await page.reload();
    await page.locator('table.jobs tbody tr').nth(199).waitFor();
    const listMs = Date.now() - t0;
    figure('500 jobs: first 200 rows shown after load', listMs, 'ms');
    figure('200 rows / empty list load', (listMs / Math.max(1, emptyMs)).toFixed(2), 'x');
    const t1 = Date.now();
    await h.waitFor('all 500 rows after scrolling', async () => {
      await page.mouse.wheel(0, 4000);
      return (await page.locator('table.jobs').last().locator('tbody tr').count()) === 500;
    }, { timeoutMs: 60000, intervalMs: 50 });
    figure('500 jobs: scrolled to the end, all 500 rows', Date.now() - t1, 'ms');
    const t2 = Date.now();
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.selectOption('#status-filter', 'STOPPED');
    await h.waitFor('the STOPPED filter', async () => (await page.locator('table.jobs tbody tr').count()) === 125);
    figure('500 jobs: filter to 125 STOPPED rows', Date.now() - t2, 'ms');
    figure('500 jobs: longest main-thread task (load, scroll, filter)', await longestTask(page), 'ms');
    await page.selectOption('#status-filter', '');
    await page.locator('table.jobs tbody tr').nth(199).waitFor();
    await shot(page, 'jobs-500');
    const tasksAll = (await page.locator('td.task').allTextContents()).filter((t) => t.includes('job '));
    assert(new Set(tasksAll).size === tasksAll.length, 'no job listed twice');
    await page.context().close();
    for (const id of ids) {
      if (['RUNNING', 'PROVISIONING', 'QUEUED'].includes(await jobStatus(kiln, id))) await kiln.api('POST', `/jobs/${id}/stop`, {});
    }
  } finally {
    await kiln.stop();
  }
});

// --- main ---------------------------------------------------------------------------------------
async function main() {
  if (process.getuid && process.getuid() !== 0) {
    console.log('SKIP: needs root for namespace sandboxes');
    return 77;
  }
  if (!fs.existsSync(CHROMIUM)) {
    console.log(`FAIL: no Chromium at ${CHROMIUM} (make deps installs Debian's chromium)`);
    return 1;
  }
  let chromium;
  try {
    ({ chromium } = require('playwright-core'));
  } catch (e) {
    console.log('FAIL: playwright-core not found (NODE_PATH=build/web/node_modules): ' + e.message);
    return 1;
  }
  const only = process.env.KILN_WEB_TESTS ? new RegExp(process.env.KILN_WEB_TESTS) : null;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiln-web-test-'));
  env = { dir, repo: path.join(dir, 'repo') };
  h.makeBuggyRepo(env.repo);
  let failed = 0;
  try {
    env.llm = await h.startFakeLlm(dir, SCRIPT);
    env.kiln = await h.startKiln(dir, { llmUrl: env.llm.url });
    env.proxy = await h.startProxy(env.kiln.port);
    env.browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    for (const t of tests) {
      if (only && !only.test(t.name)) continue;
      const start = Date.now();
      try {
        await t.fn();
        console.log(`PASS ${t.name} (${Date.now() - start} ms)`);
      } catch (e) {
        failed += 1;
        console.log(`FAIL ${t.name} (${Date.now() - start} ms)\n  ${e.stack}`);
      }
    }
  } catch (e) {
    failed += 1;
    console.log('FAIL setup: ' + e.stack);
  } finally {
    if (env.browser) await env.browser.close();
    if (env.proxy) await env.proxy.close();
    if (env.kiln) await env.kiln.stop();
    if (env.llm) await env.llm.stop();
    if (failed && env.kiln) console.log('--- kiln serve log (tail) ---\n' + env.kiln.log().slice(-6000));
  }
  if (figures.length) {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    fs.writeFileSync(path.join(ARTIFACTS, 'figures.json'), JSON.stringify(figures, null, 2));
  }
  if (!failed) fs.rmSync(dir, { recursive: true, force: true });
  else console.log('kept ' + dir);
  console.log(failed ? `${failed} failed` : 'all passed');
  return failed ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => {
  console.log(e.stack);
  process.exit(1);
});
