// The new-job form. The server validates (docs/api.md); its error message is shown next to the
// field it names. One submission at a time: the button is disabled and a second click ignored
// while one is in flight.
import { useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import { navigate } from '../router.jsx';

const AGENTS = ['mock', 'openai', 'anthropic', 'claude', 'codex', 'cursor'];
const LIMITS = [
  ['maxSteps', 'Max steps', 'integer'],
  ['maxUsd', 'Max cost (USD)', 'number'],
  ['maxTokens', 'Max tokens', 'integer'],
  ['maxWallSeconds', 'Max wall time (s)', 'integer'],
];
const FIELDS = ['repoUrl', 'ref', 'taskDesc', 'agent', 'model', 'approvals', 'allowHosts',
  ...LIMITS.map(([k]) => 'limits.' + k)];

// The form field an API error is about. Messages start with the field's path
// ("limits.maxSteps must be …", "repoUrl: …", "taskDesc is required", "unknown field 'x'").
export function fieldOf(err) {
  if (err.code === 'repo_unreachable') return 'repoUrl';
  const m = /^(?:unknown field ')?([A-Za-z]+(?:\.[A-Za-z]+)?)/.exec(err.message || '');
  if (!m) return '';
  let f = m[1];
  if (f === 'sandbox.allowHosts' || f === 'sandbox.network') f = 'allowHosts';
  return FIELDS.includes(f) ? f : '';
}

function numberOrText(text) {
  const t = text.trim();
  if (t === '') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : t; // not a number: sent as is, the server names the field
}

export function NewJob() {
  const [v, setV] = useState({
    repoUrl: '', ref: '', taskDesc: '', agent: 'mock', model: '', allowHosts: '',
    maxSteps: '', maxUsd: '', maxTokens: '', maxWallSeconds: '',
    approveCommit: false, approvePush: false,
  });
  const [errors, setErrors] = useState({});
  const [formError, setFormError] = useState('');
  const [busy, setBusy] = useState(false);
  const inFlight = useRef(false);
  const set = (k) => (e) => {
    const t = e.currentTarget;
    const value = t.type === 'checkbox' ? t.checked : t.value;
    setV((prev) => ({ ...prev, [k]: value }));
  };

  const body = () => {
    const b = { repoUrl: v.repoUrl.trim(), taskDesc: v.taskDesc, agent: v.agent };
    if (v.ref.trim()) b.ref = v.ref.trim();
    if (v.model.trim()) b.model = v.model.trim();
    const limits = {};
    for (const [k] of LIMITS) {
      const n = numberOrText(v[k]);
      if (n !== undefined) limits[k] = n;
    }
    if (Object.keys(limits).length) b.limits = limits;
    const approvals = [];
    if (v.approveCommit) approvals.push('commit');
    if (v.approvePush) approvals.push('push');
    if (approvals.length) b.approvals = approvals;
    const hosts = v.allowHosts.split(/[\s,]+/).filter(Boolean);
    if (hosts.length) b.sandbox = { network: 'allowlist', allowHosts: hosts };
    return b;
  };

  const submit = async (e) => {
    e.preventDefault();
    if (inFlight.current) return;
    inFlight.current = true;
    setBusy(true);
    setErrors({});
    setFormError('');
    try {
      const res = await api('POST', '/jobs', body());
      navigate('/jobs/' + res.jobId);
    } catch (err) {
      const field = fieldOf(err);
      if (field) {
        setErrors({ [field]: err.message });
        const el = document.getElementById('f-' + field.replace('.', '-'));
        if (el) el.focus();
      } else {
        setFormError(err.message);
      }
      inFlight.current = false;
      setBusy(false);
    }
  };

  const field = (name, label, input, help) => {
    const id = 'f-' + name.replace('.', '-');
    const err = errors[name];
    return (
      <div class={'field' + (err ? ' has-error' : '')}>
        <label for={id}>{label}</label>
        {input(id, {
          'aria-invalid': err ? 'true' : undefined,
          'aria-describedby': [help ? id + '-help' : '', err ? id + '-error' : ''].join(' ').trim() || undefined,
        })}
        {help && (
          <p class="help" id={id + '-help'}>
            {help}
          </p>
        )}
        {err && (
          <p class="field-error" id={id + '-error'} role="alert">
            <span aria-hidden="true">⚠ </span>
            {err}
          </p>
        )}
      </div>
    );
  };
  const text = (k, extra = {}) => (id, aria) => (
    <input id={id} name={k} type="text" value={v[k]} onInput={set(k)} {...extra} {...aria} />
  );

  return (
    <section>
      <h1>New job</h1>
      <form class="new-job" onSubmit={submit} novalidate>
        {field('repoUrl', 'Repository', text('repoUrl', { placeholder: 'https://github.com/owner/repo.git or /path/to/repo', autocomplete: 'off', spellcheck: false }), 'A git URL or a directory on the server.')}
        {field('ref', 'Ref', text('ref', { placeholder: 'default branch', spellcheck: false }))}
        {field('taskDesc', 'Task', (id, aria) => (
          <textarea id={id} name="taskDesc" rows={5} value={v.taskDesc} onInput={set('taskDesc')} {...aria} />
        ))}
        <div class="row">
          {field('agent', 'Agent', (id, aria) => (
            <select id={id} name="agent" value={v.agent} onChange={set('agent')} {...aria}>
              {AGENTS.map((a) => (
                <option value={a}>{a}</option>
              ))}
            </select>
          ))}
          {field('model', 'Model', text('model', { placeholder: 'provider default', spellcheck: false }))}
        </div>
        <fieldset>
          <legend>Limits (empty: the server's defaults)</legend>
          <div class="row">
            {LIMITS.map(([k, label, kind]) =>
              field('limits.' + k, label, (id, aria) => (
                <input id={id} name={k} type="text" inputMode={kind === 'integer' ? 'numeric' : 'decimal'} value={v[k]} onInput={set(k)} {...aria} />
              )),
            )}
          </div>
        </fieldset>
        <fieldset class={errors.approvals ? 'has-error' : ''}>
          <legend>Ask me before</legend>
          <label class="check">
            <input id="f-approvals" type="checkbox" checked={v.approveCommit} onChange={set('approveCommit')} /> committing
          </label>
          <label class="check">
            <input type="checkbox" checked={v.approvePush} onChange={set('approvePush')} /> pushing
          </label>
          {errors.approvals && (
            <p class="field-error" role="alert">
              {errors.approvals}
            </p>
          )}
        </fieldset>
        {field('allowHosts', 'Allowed hosts', text('allowHosts', { placeholder: 'pypi.org, files.pythonhosted.org', spellcheck: false }), 'The sandbox has no network unless you list hosts here.')}
        {formError && (
          <p class="error" role="alert">
            {formError}
          </p>
        )}
        <button type="submit" disabled={busy}>
          {busy ? 'Creating…' : 'Create job'}
        </button>
      </form>
    </section>
  );
}
