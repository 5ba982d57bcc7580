// One job: header and controls, live terminal, step timeline, diff, summary. Everything after the
// first load comes from the job's event stream (src/api/sse.cc), replayed from the start.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import { JobStream } from '../stream.js';
import { age, count, isLive, usd } from '../format.js';
import { Link } from '../router.jsx';
import { StatusBadge } from './status.jsx';
import { TerminalView } from './terminal.jsx';
import { DiffView } from './diff.jsx';
import { Steps } from './steps.jsx';
import { JobActions } from './job_actions.jsx';

const STREAM_LABEL = {
  connecting: 'connecting…',
  live: 'live',
  reconnecting: 'reconnecting…',
  ended: 'ended',
  error: 'stream error',
};

export function JobView({ jobId }) {
  const [job, setJob] = useState(null);
  const [loadError, setLoadError] = useState('');
  const [steps, setSteps] = useState([]);
  const [diff, setDiff] = useState('');
  const [question, setQuestion] = useState(null);
  const [done, setDone] = useState(null);
  const [streamState, setStreamState] = useState('connecting');
  const [tab, setTab] = useState('terminal');
  const sink = useRef(null);
  const pending = useRef([]);
  const stream = useRef(null);
  const reloadTimer = useRef(0);

  const reload = async () => {
    try {
      setJob(await api('GET', '/jobs/' + jobId));
      setLoadError('');
    } catch (e) {
      setLoadError(e.message);
    }
  };
  const reloadSoon = () => {
    clearTimeout(reloadTimer.current);
    reloadTimer.current = setTimeout(reload, 100);
  };

  // Output that arrived before the terminal existed, written first once it does: by the
  // terminal's onReady, or by the next write, whichever comes first (never after newer output).
  const flushPending = () => {
    if (!sink.current || !pending.current.length) return;
    const queued = pending.current;
    pending.current = [];
    for (const t of queued) sink.current(t);
  };

  useEffect(() => {
    reload();
    const write = (text) => {
      if (sink.current) {
        flushPending();
        sink.current(text);
      } else {
        pending.current.push(text);
      }
    };
    const s = new JobStream(jobId, {
      onEvent: ({ type, data }) => {
        switch (type) {
          case 'terminal':
            write(data.stream === 'stderr' ? '\x1b[31m' + data.data + '\x1b[0m' : data.data);
            break;
          case 'step':
            setSteps((prev) => [...prev, data]);
            reloadSoon();
            break;
          case 'diff':
            setDiff(data.diff || '');
            break;
          case 'question':
            setQuestion(data);
            break;
          case 'done':
            setDone(data);
            reloadSoon();
            break;
          case 'status':
            if (data.status === 'QUEUED' && data.taskDesc) {
              write('\r\n\x1b[1m── follow-up: ' + data.taskDesc.split('\n')[0] + '\x1b[0m\r\n');
              setDone(null);
            }
            reloadSoon();
            break;
          default:
            reloadSoon();
        }
      },
      onState: (st) => setStreamState(st),
    });
    stream.current = s;
    s.start();
    return () => {
      s.stop();
      clearTimeout(reloadTimer.current);
    };
  }, [jobId]);

  // After a `done` the stream has ended; a follow-up started elsewhere (CLI, another tab) shows up
  // in the job's status, which restarts it.
  useEffect(() => {
    if (streamState !== 'ended') return undefined;
    const t = setInterval(async () => {
      try {
        const j = await api('GET', '/jobs/' + jobId);
        setJob(j);
        if (isLive(j.status)) stream.current.start();
      } catch {
        // shown by the next successful read
      }
    }, 5000);
    return () => clearInterval(t);
  }, [streamState, jobId]);


  if (!job) {
    return (
      <section>
        <h1>Job</h1>
        {loadError ? (
          <p class="error" role="alert">
            {loadError} <Link href="/jobs">Back to the jobs</Link>
          </p>
        ) : (
          <p class="loading" role="status">
            Loading…
          </p>
        )}
      </section>
    );
  }

  // A follow-up restarts the stream, which ended at the previous `done`.
  const onContinued = () => {
    setDone(null);
    stream.current.start();
    reload();
  };

  const tabs = [
    ['terminal', 'Terminal'],
    ['steps', `Steps (${steps.length})`],
    ['diff', 'Diff'],
  ];
  return (
    <section class="job">
      <div class="page-head">
        <h1 class="job-title">{job.taskDesc.split('\n')[0] || 'Job'}</h1>
        <StatusBadge status={job.status} />
      </div>
      <dl class="facts">
        {[
          ['Repo', (job.repoUrl || '(none)') + (job.ref ? ' @ ' + job.ref : '')],
          ['Agent', job.agent + (job.model ? ' · ' + job.model : '')],
          ['Steps', count(job.steps)],
          ['Tokens', `${count(job.tokensIn)} in · ${count(job.tokensOut)} out`],
          ['Cost', usd(job.tokenSpendUsd)],
          ['Started', <time datetime={job.createdAt}>{age(job.createdAt)} ago</time>],
        ].map(([term, value]) => (
          <div>
            <dt>{term}</dt>
            <dd>{value}</dd>
          </div>
        ))}
        <div>
          <dt>Stream</dt>
          <dd class={'stream-' + streamState} data-stream-state={streamState} aria-live="polite">
            {STREAM_LABEL[streamState] || streamState}
          </dd>
        </div>
      </dl>
      {job.taskDesc.includes('\n') && (
        <details class="task-full">
          <summary>Full task</summary>
          <pre>{job.taskDesc}</pre>
        </details>
      )}
      {job.error && (
        <div class="error" role="alert">
          <strong>Failed: {job.error.code}</strong> {job.error.message}
        </div>
      )}
      {done && done.status === 'COMPLETED' && (
        <div class="summary" aria-label="Summary">
          <h2>Summary</h2>
          <p>{done.summary}</p>
          {done.branch && (
            <p>
              Branch <code>{done.branch}</code>
              {done.commit ? (
                <>
                  {' '}
                  at <code>{done.commit.slice(0, 12)}</code>
                </>
              ) : null}
            </p>
          )}
        </div>
      )}
      <JobActions job={job} question={question} onChanged={reload} onContinued={onContinued} />
      <div class="tabs" role="tablist" aria-label="Job views">
        {tabs.map(([id, label]) => (
          <button
            type="button"
            role="tab"
            id={'tab-' + id}
            aria-selected={tab === id ? 'true' : 'false'}
            aria-controls={'panel-' + id}
            tabIndex={tab === id ? 0 : -1}
            onClick={() => setTab(id)}
            onKeyDown={(e) => {
              const i = tabs.findIndex(([t]) => t === id);
              const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
              if (!step) return;
              const next = tabs[(i + step + tabs.length) % tabs.length][0];
              setTab(next);
              document.getElementById('tab-' + next).focus();
            }}
          >
            {label}
          </button>
        ))}
      </div>
      <div id="panel-terminal" role="tabpanel" aria-labelledby="tab-terminal" hidden={tab !== 'terminal'}>
        <TerminalView sink={sink} onReady={flushPending} />
      </div>
      <div id="panel-steps" role="tabpanel" aria-labelledby="tab-steps" hidden={tab !== 'steps'}>
        <Steps jobId={jobId} steps={steps} />
      </div>
      <div id="panel-diff" role="tabpanel" aria-labelledby="tab-diff" hidden={tab !== 'diff'}>
        {tab === 'diff' && <DiffView diff={diff} />}
      </div>
    </section>
  );
}
