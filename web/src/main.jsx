// The dashboard's shell: sign-in gate, header and navigation, and the page for the current path.
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import '@xterm/xterm/css/xterm.css';
import 'diff2html/bundles/css/diff2html.min.css';
import './style.css';
import { api, clearToken, getToken, onUnauthorized, takeTokenFromLocation } from './api.js';
import { Link, navigate, usePath } from './router.jsx';
import { SignIn } from './pages/signin.jsx';
import { JobList } from './pages/jobs.jsx';
import { NewJob } from './pages/new_job.jsx';
import { JobView } from './pages/job.jsx';
import { Nodes } from './pages/nodes.jsx';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function page(path) {
  const [pathname, search] = path.split('?');
  const params = new URLSearchParams(search || '');
  if (pathname === '/' || pathname === '/jobs') return <JobList status={params.get('status') || ''} />;
  if (pathname === '/jobs/new') return <NewJob />;
  const m = /^\/jobs\/([^/]+)$/.exec(pathname);
  if (m && UUID.test(m[1])) return <JobView key={m[1]} jobId={m[1]} />;
  if (pathname === '/nodes') return <Nodes />;
  return (
    <section>
      <h1>Not found</h1>
      <p>
        There is no page at <code>{pathname}</code>. <Link href="/jobs">Back to the jobs</Link>.
      </p>
    </section>
  );
}

function App() {
  const path = usePath();
  // 'checking' until the stored token is known good; 'out' shows only the sign-in page.
  const [auth, setAuth] = useState(getToken() ? 'checking' : 'out');
  const [signInNote, setSignInNote] = useState('');

  useEffect(() => {
    onUnauthorized((err) => {
      clearToken();
      setSignInNote('Your token was not accepted: ' + err.message + '.');
      setAuth('out');
    });
    if (auth === 'checking') {
      api('GET', '/jobs?limit=1')
        .then(() => setAuth('in'))
        .catch((e) => {
          if (e.status !== 401) {
            // The server is down or failing: keep the token, say so.
            setSignInNote(e.message);
            setAuth('in');
          }
        });
    }
  }, []);

  // After a navigation, focus moves to the new page (screen readers announce it, Tab starts
  // there); on the first load it stays at the top, where the skip link is.
  const shownPath = useRef(path);
  useEffect(() => {
    if (shownPath.current === path) return;
    shownPath.current = path;
    const main = document.getElementById('main');
    if (main && auth === 'in') main.focus({ preventScroll: true });
  }, [path, auth]);

  if (auth === 'checking') return <p class="loading" role="status">Signing in…</p>;
  if (auth === 'out') {
    return (
      <SignIn
        note={signInNote}
        onSignedIn={() => {
          setSignInNote('');
          setAuth('in');
          if (location.pathname === '/') navigate('/jobs', { replace: true });
        }}
      />
    );
  }
  const signOut = () => {
    clearToken();
    setSignInNote('Signed out.');
    setAuth('out');
  };
  const here = path.split('?')[0];
  const current = (p) => (here === p || (p === '/jobs' && here === '/') ? 'page' : undefined);
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <Link href="/jobs" class="brand">
          kiln
        </Link>
        <nav aria-label="Main">
          <Link href="/jobs" aria-current={current('/jobs')}>
            Jobs
          </Link>
          <Link href="/jobs/new" aria-current={current('/jobs/new')}>
            New job
          </Link>
          <Link href="/nodes" aria-current={current('/nodes')}>
            Nodes
          </Link>
          <button type="button" class="link" onClick={signOut}>
            Sign out
          </button>
        </nav>
      </header>
      {signInNote && auth === 'in' && (
        <p class="banner" role="alert">
          {signInNote}
        </p>
      )}
      <main id="main" tabIndex={-1}>
        {page(path)}
      </main>
    </>
  );
}

takeTokenFromLocation();
render(<App />, document.getElementById('app'));
