// Small display helpers shared by the pages.
export const LIVE = ['QUEUED', 'PROVISIONING', 'RUNNING', 'PAUSED'];
export const TERMINAL = ['COMPLETED', 'FAILED', 'STOPPED'];
export const STATUSES = [...LIVE, ...TERMINAL];

// A shape per status, so the badge reads without colour too.
const SYMBOL = {
  QUEUED: '…',
  PROVISIONING: '◌',
  RUNNING: '▶',
  PAUSED: '‖',
  COMPLETED: '✓',
  FAILED: '✗',
  STOPPED: '■',
};

export function statusSymbol(s) {
  return SYMBOL[s] || '?';
}

export function isLive(status) {
  return LIVE.includes(status);
}

export function usd(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '—';
  return '$' + (n < 1 ? n.toFixed(4) : n.toFixed(2));
}

// One formatter: toLocaleString() builds a new one per call, which a 500-row list notices.
const NUMBER = new Intl.NumberFormat('en-US');

export function count(n) {
  return typeof n === 'number' ? NUMBER.format(n) : '—';
}

export function age(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '—';
  const s = Math.max(0, Math.floor((now - t) / 1000));
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm';
  if (s < 86400) return Math.floor(s / 3600) + 'h';
  return Math.floor(s / 86400) + 'd';
}

// The last path component of a repo URL, without .git: "o/r.git" -> "r".
export function repoName(url) {
  if (!url) return '(no repo)';
  const trimmed = url.replace(/\/+$/, '').replace(/\.git$/, '');
  const i = Math.max(trimmed.lastIndexOf('/'), trimmed.lastIndexOf(':'));
  return i >= 0 ? trimmed.slice(i + 1) : trimmed;
}

export function firstLine(text, max = 120) {
  const line = (text || '').split('\n')[0];
  return line.length > max ? line.slice(0, max - 1) + '…' : line;
}
