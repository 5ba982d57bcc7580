// What a person can do to a job in its current state: answer a question, approve or refuse a
// gate, give a finished job a follow-up, stop a live one. Each button works once per click:
// disabled while its request is in flight.
import { useRef, useState } from 'preact/hooks';
import { api } from '../api.js';
import { isLive } from '../format.js';

function useAction(onDone) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  const inFlight = useRef(false);
  const run = async (method, path, body) => {
    if (inFlight.current) return false;
    inFlight.current = true;
    setBusy(true);
    setError('');
    try {
      await api(method, path, body);
      onDone();
      return true;
    } catch (e) {
      setError(e.message);
      return false;
    } finally {
      inFlight.current = false;
      setBusy(false);
    }
  };
  return { busy, error, run };
}

export function JobActions({ job, question, onChanged, onContinued }) {
  const [text, setText] = useState('');
  const [followUp, setFollowUp] = useState('');
  const base = '/jobs/' + job.jobId;
  const act = useAction(onChanged);
  const cont = useAction(onContinued);

  const gate = job.approval && job.approval.state === 'pending' ? job.approval : null;
  const paused = job.status === 'PAUSED';
  const q = question && question.question;

  const reply = async (e) => {
    e.preventDefault();
    if (await act.run('POST', base + '/reply', { message: text })) setText('');
  };
  const followUpSubmit = async (e) => {
    e.preventDefault();
    if (await cont.run('POST', base + '/continue', { taskDesc: followUp })) setFollowUp('');
  };

  return (
    <div class="actions">
      {paused && gate && (
        <form class="panel attention" onSubmit={reply} aria-labelledby="gate-title">
          <h2 id="gate-title">Approval needed: {gate.action}</h2>
          {question && question.summary && <p class="question">{question.summary}</p>}
          {q && <p class="muted">{q}</p>}
          <div class="buttons">
            <button type="button" disabled={act.busy} onClick={() => act.run('POST', base + '/approve', {})}>
              Approve {gate.action}
            </button>
          </div>
          <label for="refuse-reason">Or refuse, with a reason for the agent</label>
          <textarea id="refuse-reason" rows={2} value={text} onInput={(e) => setText(e.currentTarget.value)} />
          <div class="buttons">
            <button type="submit" class="secondary" disabled={act.busy}>
              Refuse
            </button>
          </div>
        </form>
      )}
      {paused && !gate && (
        <form class="panel attention" onSubmit={reply} aria-labelledby="question-title">
          <h2 id="question-title">The agent asks</h2>
          <p class="question">{q || '(waiting for a reply)'}</p>
          <label for="reply-text">Your reply</label>
          <textarea id="reply-text" rows={3} value={text} onInput={(e) => setText(e.currentTarget.value)} />
          <div class="buttons">
            <button type="submit" disabled={act.busy}>
              Send reply
            </button>
          </div>
        </form>
      )}
      {!isLive(job.status) && (
        <form class="panel" onSubmit={followUpSubmit} aria-labelledby="continue-title">
          <h2 id="continue-title">Continue with a follow-up</h2>
          <label for="follow-up">Follow-up task (same workspace)</label>
          <textarea id="follow-up" rows={2} value={followUp} onInput={(e) => setFollowUp(e.currentTarget.value)} />
          <div class="buttons">
            <button type="submit" disabled={cont.busy}>
              Continue
            </button>
          </div>
          {cont.error && (
            <p class="field-error" role="alert">
              {cont.error}
            </p>
          )}
        </form>
      )}
      {isLive(job.status) && (
        <div class="buttons">
          <button type="button" class="danger" disabled={act.busy} onClick={() => act.run('POST', base + '/stop', {})}>
            Stop job
          </button>
        </div>
      )}
      {act.error && (
        <p class="field-error" role="alert">
          {act.error}
        </p>
      )}
    </div>
  );
}
