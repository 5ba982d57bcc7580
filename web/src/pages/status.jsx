import { statusSymbol } from '../format.js';

// A status as a shape plus its name: readable without colour.
export function StatusBadge({ status }) {
  return (
    <span class={'badge s-' + (status || '').toLowerCase()}>
      <span aria-hidden="true">{statusSymbol(status)}</span> {status}
    </span>
  );
}
