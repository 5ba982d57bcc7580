// The job's live terminal: xterm.js fed with the `terminal` events' bytes (ANSI colours kept).
// The Terminal object is also reachable as the container's `kilnTerminal` property, which the
// browser tests read (tests/web/).
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { useEffect, useRef } from 'preact/hooks';

const DARK = { background: '#111418', foreground: '#d8dde3', cursor: '#111418' };
const LIGHT = {
  background: '#fbfbfa', foreground: '#1d2125', cursor: '#fbfbfa', selectionBackground: '#b5d5ff',
  // the default palette's yellow and white are unreadable on a light background
  yellow: '#8a6d00', brightYellow: '#7a5c00', white: '#555555', brightWhite: '#333333',
};

function theme() {
  return matchMedia('(prefers-color-scheme: dark)').matches ? DARK : LIGHT;
}

// `sink.current` receives a write(text) function once the terminal exists.
export function TerminalView({ sink }) {
  const el = useRef(null);
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
    return () => {
      sink.current = null;
      ro.disconnect();
      mq.removeEventListener('change', onScheme);
      term.dispose();
    };
  }, []);
  return <div class="terminal" ref={el} role="log" aria-label="Terminal output" tabIndex={0} />;
}
