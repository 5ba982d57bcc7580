// The job list: the jobs waiting for a human first, then every job newest first, filtered by
// status, live (re-read every few seconds while the tab is visible), more pages on scroll.
import { memo } from 'preact/compat';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import { age, count, firstLine, repoName, STATUSES, usd } from '../format.js';
import { Link, navigate } from '../router.jsx';
import { StatusBadge } from './status.jsx';

const PAGE = 200;
const REFRESH_MS = 3000;

// Reads pages of /jobs until `want` jobs (or the end); returns {jobs, nextCursor}.
async function readPages(status, want, signal) {
  const jobs = [];
  let cursor = '';
  do {
    const q = new URLSearchParams({ limit: String(Math.min(PAGE, Math.max(1, want - jobs.length))) });
    if (status) q.set('status', status);
    if (cursor) q.set('cursor', cursor);
    const page = await api('GET', '/jobs?' + q, undefined, { signal });
    jobs.push(...page.jobs);
    cursor = page.nextCursor || '';
  } while (cursor && jobs.length < want);
  return { jobs, nextCursor: cursor };
}

const JobRow = memo(
  function JobRow({ job, now }) {
    const href = '/jobs/' + job.jobId;
    return (
      <tr>
        <td data-label="Status">
          <StatusBadge status={job.status} />
        </td>
        <td data-label="Task" class="task">
          <Link href={href}>{firstLine(job.taskDesc, 100) || '(no task)'}</Link>
        </td>
        <td data-label="Repo" title={job.repoUrl}>
          {repoName(job.repoUrl)}
        </td>
        <td data-label="Agent">{job.agent}</td>
        <td data-label="Steps" class="num">
          {count(job.steps)}
        </td>
        <td data-label="Cost" class="num">
          {usd(job.tokenSpendUsd)}
        </td>
        <td data-label="Age" class="num">
          <time datetime={job.createdAt}>{age(job.createdAt, now)}</time>
        </td>
      </tr>
    );
  },
  (a, b) => a.job.updatedAt === b.job.updatedAt && a.job.status === b.job.status && a.now === b.now,
);

function JobTable({ jobs, now, caption }) {
  return (
    <table class="jobs">
      <caption>{caption}</caption>
      <thead>
        <tr>
          <th scope="col">Status</th>
          <th scope="col">Task</th>
          <th scope="col">Repo</th>
          <th scope="col">Agent</th>
          <th scope="col" class="num">
            Steps
          </th>
          <th scope="col" class="num">
            Cost
          </th>
          <th scope="col" class="num">
            Age
          </th>
        </tr>
      </thead>
      <tbody>
        {jobs.map((j) => (
          <JobRow key={j.jobId} job={j} now={now} />
        ))}
      </tbody>
    </table>
  );
}

export function JobList({ status }) {
  const [jobs, setJobs] = useState(null);
  const [waiting, setWaiting] = useState([]);
  const [more, setMore] = useState(false);
  const [error, setError] = useState('');
  const [now, setNow] = useState(Date.now());
  const wanted = useRef(PAGE);
  const loadingMore = useRef(false);
  const sentinel = useRef(null);
  const latest = useRef(0);

  // Reads run concurrently (timer, scrolling); only the newest one's answer is shown.
  const refresh = useCallback(
    async (signal) => {
      const seq = ++latest.current;
      try {
        const [all, paused] = await Promise.all([
          readPages(status, wanted.current, signal),
          status ? Promise.resolve({ jobs: [] }) : readPages('PAUSED', PAGE, signal),
        ]);
        if (seq !== latest.current) return;
        setJobs(all.jobs);
        setMore(Boolean(all.nextCursor));
        setWaiting(paused.jobs);
        setNow(Date.now());
        setError('');
      } catch (e) {
        if (e.name !== 'AbortError') setError(e.message);
      }
    },
    [status],
  );

  useEffect(() => {
    wanted.current = PAGE;
    setJobs(null);
    const ctrl = new AbortController();
    let timer = 0;
    const tick = async () => {
      if (!document.hidden) await refresh(ctrl.signal);
      if (!ctrl.signal.aborted) timer = setTimeout(tick, REFRESH_MS);
    };
    tick();
    return () => {
      ctrl.abort();
      clearTimeout(timer);
    };
  }, [status, refresh]);

  // More pages when the end of the list scrolls into view.
  useEffect(() => {
    if (!sentinel.current || !more) return undefined;
    const obs = new IntersectionObserver(async (entries) => {
      if (!entries.some((e) => e.isIntersecting) || loadingMore.current) return;
      loadingMore.current = true;
      wanted.current += PAGE;
      await refresh();
      loadingMore.current = false;
    });
    obs.observe(sentinel.current);
    return () => obs.disconnect();
  }, [more, jobs, refresh]);

  const onFilter = (e) => {
    const s = e.currentTarget.value;
    navigate(s ? '/jobs?status=' + s : '/jobs');
  };

  return (
    <section>
      <div class="page-head">
        <h1>Jobs</h1>
        <Link href="/jobs/new" class="button">
          New job
        </Link>
      </div>
      <div class="filters">
        <label for="status-filter">Status</label>
        <select id="status-filter" value={status} onChange={onFilter}>
          <option value="">All</option>
          {STATUSES.map((s) => (
            <option value={s}>{s}</option>
          ))}
        </select>
        <span class="muted" role="status" aria-live="polite">
          {jobs ? `${count(jobs.length)}${more ? '+' : ''} job${jobs.length === 1 && !more ? '' : 's'}` : 'Loading…'}
        </span>
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {waiting.length > 0 && (
        <section class="waiting" aria-labelledby="waiting-title">
          <h2 id="waiting-title">Waiting for you ({waiting.length})</h2>
          <JobTable jobs={waiting} now={now} caption="Paused jobs that need a reply or approval" />
        </section>
      )}
      {jobs && jobs.length === 0 && (
        <p class="empty">
          No jobs{status ? ' with status ' + status : ''} yet. <Link href="/jobs/new">Start one</Link>.
        </p>
      )}
      {jobs && jobs.length > 0 && (
        <JobTable jobs={jobs} now={now} caption={status ? status + ' jobs, newest first' : 'All jobs, newest first'} />
      )}
      {more && (
        <div ref={sentinel} class="more">
          <button
            type="button"
            onClick={async () => {
              wanted.current += PAGE;
              await refresh();
            }}
          >
            Load more
          </button>
        </div>
      )}
    </section>
  );
}
