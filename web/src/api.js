// The HTTP API as the dashboard uses it (docs/api.md): every call sends the stored bearer token;
// errors become ApiError with the server's stable code and message. A 401 anywhere signs out.
const TOKEN_KEY = 'kiln.token';

export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

export function setToken(token) {
  localStorage.setItem(TOKEN_KEY, token);
}

export function clearToken() {
  try {
    localStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage unavailable: nothing was kept
  }
}

// A `#token=...` link (printed by `kiln ui` and `make demo`) signs in once: the token moves to
// storage and leaves the address bar and the history entry.
export function takeTokenFromLocation() {
  const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (!m) return false;
  let token = '';
  try {
    token = decodeURIComponent(m[1]);
  } catch {
    token = '';
  }
  history.replaceState(history.state, '', location.pathname + location.search);
  if (!token) return false;
  setToken(token);
  return true;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

let unauthorizedHandler = () => {};
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}
export function signalUnauthorized(err) {
  unauthorizedHandler(err);
}

export function authHeaders(extra = {}) {
  return { Authorization: 'Bearer ' + getToken(), ...extra };
}

async function errorFrom(res) {
  const text = await res.text();
  let code = 'http_' + res.status;
  let message = text || res.statusText;
  try {
    const j = JSON.parse(text);
    if (j && j.error) {
      code = j.error.code || code;
      message = j.error.message || message;
    }
  } catch {
    // not JSON: keep the text
  }
  return new ApiError(res.status, code, message);
}

// method, path under /api/v1, optional JSON body. Resolves to parsed JSON (or text).
export async function api(method, path, body, { signal } = {}) {
  const headers = authHeaders();
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch('/api/v1' + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'cannot reach the kiln server (' + e.message + ')');
  }
  if (!res.ok) {
    const err = await errorFrom(res);
    if (res.status === 401) signalUnauthorized(err);
    throw err;
  }
  const type = res.headers.get('content-type') || '';
  return type.includes('json') ? res.json() : res.text();
}

export { errorFrom };
