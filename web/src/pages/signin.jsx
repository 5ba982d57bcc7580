// Sign-in: the only page a visitor without a good token sees.
import { useState } from 'preact/hooks';
import { api, clearToken, setToken } from '../api.js';

export function SignIn({ note, onSignedIn }) {
  const [token, setTokenText] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (e) => {
    e.preventDefault();
    if (busy) return;
    const t = token.trim();
    if (!t) {
      setError('Enter an API token.');
      return;
    }
    setBusy(true);
    setError('');
    setToken(t);
    try {
      await api('GET', '/jobs?limit=1');
      onSignedIn();
    } catch (err) {
      clearToken();
      setError(err.status === 401 ? 'That token was not accepted: ' + err.message + '.' : err.message);
      setBusy(false);
    }
  };

  return (
    <main id="main" class="signin" tabIndex={-1}>
      <h1>kiln</h1>
      <form onSubmit={submit} aria-labelledby="signin-title" novalidate>
        <h2 id="signin-title">Sign in</h2>
        {note && !error && (
          <p class="note" role="status">
            {note}
          </p>
        )}
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="current-password"
          value={token}
          onInput={(e) => setTokenText(e.currentTarget.value)}
          aria-invalid={error ? 'true' : undefined}
          aria-describedby="token-help token-error"
        />
        <p id="token-help" class="help">
          <code>kiln ui</code> prints a sign-in link; the admin token is in{' '}
          <code>&lt;data-dir&gt;/admin.token</code>.
        </p>
        <p id="token-error" class="field-error" role="alert">
          {error}
        </p>
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
