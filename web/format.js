// format.js: numbers, times and dates as the page shows them.

export function bytes(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

// clock(seconds): m:ss, or h:mm:ss from an hour on.
export function clock(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return '—';
  const t = Math.max(0, Math.floor(s));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = String(t % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

export function seconds(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return '—';
  return s < 10 ? `${s.toFixed(1)} s` : clock(s);
}

export function date(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

const STATUS_WORDS = {
  uploaded: 'Uploaded',
  queued: 'Queued',
  running: 'Transcribing',
  done: 'Done',
  failed: 'Failed',
  canceled: 'Canceled',
};

// status(meta): the entry's state in words, with the queue position (the
// API's, 1 for the next job to run) or the progress while it has a job.
export function status(meta) {
  const word = STATUS_WORDS[meta.status] || meta.status;
  if (meta.status === 'queued' && Number.isInteger(meta.queue_position))
    return `${word} (position ${meta.queue_position})`;
  if (meta.status === 'running') return `${word} ${Math.round(meta.progress || 0)} %`;
  return word;
}

export const isActive = (meta) => meta && (meta.status === 'queued' || meta.status === 'running');

// el(tag, attrs, ...children): a small element builder (text children are
// text nodes, never HTML).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, '');
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}
