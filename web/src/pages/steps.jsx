// The step timeline: thought, tool, arguments, output, tokens and cost of each step.
import { memo } from 'preact/compat';
import { useState } from 'preact/hooks';
import { api } from '../api.js';
import { usd } from '../format.js';

// A step event carries the first 4 KiB of the output (src/agent/job_runner.cc); /steps has all.
const TRUNCATED = /\n\[\.\.\. \d+ more bytes in \/steps \.\.\.\]$/;

// Tool output is shown as plain text: colour and cursor escapes dropped (the terminal has them).
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g;

function argsText(args) {
  if (args === undefined || args === null) return '';
  if (typeof args === 'string') return args;
  if (typeof args.command === 'string' && Object.keys(args).length === 1) return args.command;
  return JSON.stringify(args, null, 2);
}

function oneLine(args) {
  const t = argsText(args).split('\n')[0];
  return t.length > 80 ? t.slice(0, 79) + '…' : t;
}

const Step = memo(function Step({ s, fullOutput, onShowFull }) {
  const tokens = s.tokens ? `${s.tokens.in} in / ${s.tokens.out} out` : '';
  const output = (fullOutput ?? s.toolOutput ?? '').replace(ANSI, '');
  return (
    <li class={'step' + (s.isError ? ' step-error' : '')}>
      <details>
        <summary>
          <span class="step-n">#{s.stepNumber}</span> <span class="step-tool">{s.toolCalled || s.phase}</span>{' '}
          <code class="step-args">{oneLine(s.toolArguments)}</code>
          {s.isError && <span class="step-flag"> (error)</span>}
          <span class="step-cost">
            {tokens}
            {tokens && ' · '}
            {usd(s.usd)}
          </span>
        </summary>
        {s.plannerThought && (
          <>
            <h3>Thought</h3>
            <p class="thought">{s.plannerThought}</p>
          </>
        )}
        <h3>Arguments</h3>
        <pre>{argsText(s.toolArguments)}</pre>
        <h3>Output</h3>
        <pre class="output">{output}</pre>
        {fullOutput === undefined && TRUNCATED.test(s.toolOutput || '') && (
          <button type="button" class="secondary" onClick={onShowFull}>
            Show the full output
          </button>
        )}
      </details>
    </li>
  );
});

export function Steps({ jobId, steps }) {
  const [full, setFull] = useState(null); // stepNumber -> output, from /steps
  const [error, setError] = useState('');
  const showFull = async () => {
    try {
      const r = await api('GET', '/jobs/' + jobId + '/steps');
      const list = Array.isArray(r) ? r : r.steps || [];
      setFull(new Map(list.map((x) => [x.stepNumber, x.toolOutput])));
    } catch (e) {
      setError(e.message);
    }
  };
  if (!steps.length) return <p class="empty">No steps yet.</p>;
  return (
    <>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <ol class="steps">
        {steps.map((s, i) => (
          <Step key={i} s={s} fullOutput={full ? full.get(s.stepNumber) : undefined} onShowFull={showFull} />
        ))}
      </ol>
    </>
  );
}
