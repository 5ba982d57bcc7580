// The step timeline: thought, tool, arguments, output, tokens and cost of each step.
import { memo } from 'preact/compat';
import { usd } from '../format.js';

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

const Step = memo(function Step({ s }) {
  const tokens = s.tokens ? `${s.tokens.in} in / ${s.tokens.out} out` : '';
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
        <pre class="output">{s.toolOutput}</pre>
      </details>
    </li>
  );
});

export function Steps({ steps }) {
  if (!steps.length) return <p class="empty">No steps yet.</p>;
  return (
    <ol class="steps">
      {steps.map((s, i) => (
        <Step key={i} s={s} />
      ))}
    </ol>
  );
}
