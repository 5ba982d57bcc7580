// The job's live terminal: xterm.js fed with the `terminal` events' bytes (ANSI colours kept).
// The Terminal object is also reachable as the container's `kilnTerminal` property, which the
// browser tests read (tests/web/).
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { useEffect, useRef, useState } from 'preact/hooks';

const DARK = { background: '#111418', foreground: '#d8dde3', cursor: '#111418' };
const LIGHT = {
  background: '#fbfbfa', foreground: '#1d2125', cursor: '#fbfbfa', selectionBackground: '#b5d5ff',
  // the default palette's yellow and white are unreadable on a light background
  yellow: '#8a6d00', brightYellow: '#7a5c00', white: '#555555', brightWhite: '#333333',
};

function theme() {
  return matchMedia('(prefers-color-scheme: dark)').matches ? DARK : LIGHT;
}

// `sink.current` receives a write(text) function once the terminal exists; `onReady` is called
// right after, so output that arrived before goes in first.
export function TerminalView({ sink, onReady }) {
  const el = useRef(null);
  const [reader, setReader] = useState(false);
  useEffect(() => {
    const term = new Terminal({
      convertEol: true,
      disableStdin: true,
      cursorBlink: false,
      scrollback: 100000,
      fontSize: 13,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace',
      theme: theme(),
      screenReaderMode: false,
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el.current);
    el.current.kilnTerminal = term;
    const refit = () => {
      try {
        fit.fit();
      } catch {
        // not laid out yet
      }
    };
    refit();
    const ro = new ResizeObserver(refit);
    ro.observe(el.current);
    const mq = matchMedia('(prefers-color-scheme: dark)');
    const onScheme = () => (term.options.theme = theme());
    mq.addEventListener('change', onScheme);
    sink.current = (text) => term.write(text);
    if (onReady) onReady();
    return () => {
      sink.current = null;
      ro.disconnect();
      mq.removeEventListener('change', onScheme);
      term.dispose();
    };
  }, []);
  // xterm.js draws rows for the eye; its screen-reader mode adds a text mirror of the buffer.
  const toggleReader = (e) => {
    const on = e.currentTarget.checked;
    setReader(on);
    if (el.current && el.current.kilnTerminal) el.current.kilnTerminal.options.screenReaderMode = on;
  };
  return (
    <>
      <label class="check terminal-options">
        <input type="checkbox" checked={reader} onChange={toggleReader} /> Screen reader mode
      </label>
      <div class="terminal" ref={el} aria-label="Terminal output" />
    </>
  );
}
