// events.mjs: follows a job's GET /jobs/<id>/events with Node's own
// EventSource (node --experimental-eventsource), the WHATWG client a browser
// has: it reconnects by itself and sends Last-Event-ID.
//
// Environment: HARK_URL (the server), HARK_ID (an upload id or a job
// number), HARK_OUT (a file for what was received, as JSON), HARK_KILL
// (optional: process ids, comma-separated, sent SIGKILL as soon as the job
// has finished its first window after its first segment: a progress event
// above 10 % after that segment), HARK_TIMEOUT_S (default 300).
//
// Writes {segments: [{index, lastEventId, data, t, latency (ms since the
// segment's decoded_at)}], progress: [{data, t,
// afterSegments}], end: {type, data, t}, opened: n, errors: n, killedAt}
// to HARK_OUT and exits 0 once an end event came, 1 otherwise. The checks
// on it are the caller's.
import fs from 'node:fs';

const base = process.env.HARK_URL;
const id = process.env.HARK_ID;
const out = process.env.HARK_OUT;
const kill = (process.env.HARK_KILL || '').split(',').filter(Boolean).map(Number);
const timeoutS = Number(process.env.HARK_TIMEOUT_S || 300);

if (typeof EventSource !== 'function') {
  console.log('FAIL events_client: this node has no EventSource (needs --experimental-eventsource)');
  process.exit(1);
}

const t0 = Date.now();
const got = { segments: [], progress: [], end: null, opened: 0, errors: 0, killedAt: null };
const es = new EventSource(`${base}/jobs/${id}/events`);
const finish = (code) => {
  es.close();
  fs.writeFileSync(out, JSON.stringify(got));
  process.exit(code);
};
const timer = setTimeout(() => finish(1), timeoutS * 1000);

es.onopen = () => got.opened++;
es.onerror = () => got.errors++;
es.addEventListener('progress', (e) => {
  const data = JSON.parse(e.data);
  got.progress.push({ data, t: Date.now() - t0, afterSegments: got.segments.length });
  if (kill.length && got.killedAt === null && got.segments.length > 0 && data.percent > 10) {
    got.killedAt = { t: Date.now() - t0, segments: got.segments.length };
    for (const pid of kill) process.kill(pid, 'SIGKILL');
  }
});
es.addEventListener('segment', (e) => {
  const data = JSON.parse(e.data);
  // From the worker storing it to here, on this machine's one clock.
  const latency = data.decoded_at ? Date.now() - Date.parse(data.decoded_at) : null;
  got.segments.push({ index: data.index, lastEventId: e.lastEventId, data, t: Date.now() - t0, latency });
});
for (const type of ['done', 'failed', 'canceled']) {
  es.addEventListener(type, (e) => {
    got.end = { type, data: JSON.parse(e.data), t: Date.now() - t0, lastEventId: e.lastEventId };
    clearTimeout(timer);
    finish(0);
  });
}
