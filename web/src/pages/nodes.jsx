// Fleet nodes (GET /api/v1/nodes). A single server without fleet mode answers 404: said so.
import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.js';
import { age, count } from '../format.js';

export function Nodes() {
  const [nodes, setNodes] = useState(null);
  const [note, setNote] = useState('');
  useEffect(() => {
    let alive = true;
    const load = async () => {
      try {
        const r = await api('GET', '/nodes');
        if (alive) setNodes(Array.isArray(r) ? r : r.nodes || []);
      } catch (e) {
        if (!alive) return;
        setNote(
          e.status === 404
            ? 'This server is not part of a fleet: nodes are listed here once fleet mode is on.'
            : e.message,
        );
      }
    };
    load();
    const t = setInterval(load, 5000);
    return () => {
      alive = false;
      clearInterval(t);
    };
  }, []);
  return (
    <section>
      <h1>Nodes</h1>
      {note && <p class="empty">{note}</p>}
      {!note && !nodes && <p class="loading">Loading…</p>}
      {nodes && (
        <table class="jobs">
          <caption>Nodes of this fleet</caption>
          <thead>
            <tr>
              <th scope="col">Node</th>
              <th scope="col">Address</th>
              <th scope="col" class="num">Jobs</th>
              <th scope="col" class="num">Capacity</th>
              <th scope="col" class="num">Heartbeat</th>
            </tr>
          </thead>
          <tbody>
            {nodes.map((n) => (
              <tr key={n.id || n.nodeId}>
                <td data-label="Node">{n.id || n.nodeId}</td>
                <td data-label="Address">{n.address}</td>
                <td data-label="Jobs" class="num">{count(n.runningJobs)}</td>
                <td data-label="Capacity" class="num">{count(n.capacity)}</td>
                <td data-label="Heartbeat" class="num">{age(n.lastHeartbeat)} ago</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
