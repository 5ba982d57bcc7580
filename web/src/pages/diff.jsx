// The workspace diff, side by side or unified (diff2html; it escapes the diff's text).
import { html as diffHtml } from 'diff2html';
import { useMemo, useState } from 'preact/hooks';

export function DiffView({ diff }) {
  const [format, setFormat] = useState(() =>
    matchMedia('(min-width: 900px)').matches ? 'side-by-side' : 'line-by-line',
  );
  const rendered = useMemo(
    () =>
      diff
        ? diffHtml(diff, { outputFormat: format, drawFileList: true, matching: 'lines', colorScheme: 'auto' })
        : '',
    [diff, format],
  );
  return (
    <div class="diff">
      <fieldset class="diff-format">
        <legend class="sr-only">Diff layout</legend>
        <label class="check">
          <input type="radio" name="diff-format" checked={format === 'side-by-side'} onChange={() => setFormat('side-by-side')} />{' '}
          Side by side
        </label>
        <label class="check">
          <input type="radio" name="diff-format" checked={format === 'line-by-line'} onChange={() => setFormat('line-by-line')} />{' '}
          Unified
        </label>
      </fieldset>
      {diff ? (
        <div class="diff-body" dangerouslySetInnerHTML={{ __html: rendered }} />
      ) : (
        <p class="empty">No changes yet.</p>
      )}
    </div>
  );
}
