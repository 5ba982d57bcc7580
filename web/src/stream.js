// A job's event stream (GET /api/v1/jobs/{id}/stream) read with fetch, so the token travels in
// the Authorization header and never in a URL (EventSource cannot set headers). Reconnects by
// itself after a drop with Last-Event-ID = the last event it handed on; events are handed on
// once each, in order, and only when complete, so a cut never duplicates or loses one.
import { authHeaders, errorFrom, signalUnauthorized } from './api.js';

const MIN_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 5000;

export class JobStream {
  // onEvent({seq, type, data}); onState('connecting' | 'live' | 'reconnecting' | 'ended' |
  // 'error', detail).
  constructor(jobId, { onEvent, onState }) {
    this.jobId = jobId;
    this.onEvent = onEvent;
    this.onState = onState || (() => {});
    this.lastSeq = 0;
    this.running = false;
    this.controller = null;
    this.connects = 0;
  }

  // Starts (or restarts, after the stream ended at a `done`) following from lastSeq.
  start() {
    if (this.running) return;
    this.running = true;
    this.loop();
  }

  stop() {
    this.running = false;
    if (this.controller) this.controller.abort();
  }

  async loop() {
    let backoff = MIN_BACKOFF_MS;
    while (this.running) {
      const outcome = await this.connectOnce();
      if (!this.running) return;
      if (outcome === 'done' || outcome === 'fatal') {
        this.running = false;
        return;
      }
      if (outcome === 'progress') backoff = MIN_BACKOFF_MS;
      this.onState('reconnecting');
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  }

  // One connection. 'done': the run ended (last event `done`); 'fatal': stop trying;
  // 'progress' / 'idle': the connection dropped after / without new events.
  async connectOnce() {
    this.controller = new AbortController();
    this.connects += 1;
    this.onState(this.connects === 1 ? 'connecting' : 'reconnecting');
    const headers = authHeaders({ Accept: 'text/event-stream' });
    if (this.lastSeq > 0) headers['Last-Event-ID'] = String(this.lastSeq);
    let got = 0;
    let lastType = '';
    try {
      const res = await fetch('/api/v1/jobs/' + encodeURIComponent(this.jobId) + '/stream', {
        headers,
        signal: this.controller.signal,
        cache: 'no-store',
      });
      if (!res.ok) {
        const err = await errorFrom(res);
        if (res.status === 401) signalUnauthorized(err);
        if (res.status >= 400 && res.status < 500) {
          this.onState('error', err.message);
          return 'fatal';
        }
        return 'idle';
      }
      this.onState('live');
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
        let end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const ev = parseBlock(block);
          if (!ev || ev.seq <= this.lastSeq) continue;
          this.lastSeq = ev.seq;
          got += 1;
          lastType = ev.type;
          this.onEvent(ev);
        }
      }
    } catch (e) {
      if (!this.running) return 'fatal';
      // A network error or a cut: try again from lastSeq.
    }
    if (lastType === 'done') {
      this.onState('ended');
      return 'done';
    }
    return got > 0 ? 'progress' : 'idle';
  }
}

// One SSE block: `id:`, `event:`, `data:` lines; comments (`: keepalive`) ignored.
function parseBlock(block) {
  let id = null;
  let type = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (!line || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'id') id = Number(value);
    else if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  if (id === null || !Number.isFinite(id)) return null;
  let payload = null;
  try {
    payload = JSON.parse(data.join('\n'));
  } catch {
    payload = { raw: data.join('\n') };
  }
  return { seq: id, type, data: payload };
}
