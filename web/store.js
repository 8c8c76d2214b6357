// store.js: what the page knows about uploads, shared by the views. Views
// call watch(meta) for entries with a queued or running job; each is then
// followed through its job's event stream (api.followJob), never polled.
// Listeners get ("update", metadata) as the job moves and once more with
// the entry's final metadata when it ends, ("segment", {id, segment}) for
// each segment of the transcript as soon as it is decoded, and
// ("deleted", id).

import { getUpload, followJob, ApiError } from './api.js';
import { isActive } from './format.js';

const listeners = new Set();
const followed = new Map(); // id -> {meta, stream, segments}

export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function publish(kind, value) {
  for (const fn of listeners) fn(kind, value);
}

// liveSegments(id): the segments decoded so far of a followed entry's job.
export function liveSegments(id) {
  const f = followed.get(id);
  return f ? f.segments.slice() : [];
}

// The entry as it is once its job ended (or went).
async function settle(id) {
  followed.delete(id);
  try {
    const meta = await getUpload(id);
    publish('update', meta);
    // Scheduled again meanwhile: followed again.
    watch(meta);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) publish('deleted', id);
  }
}

export function watch(meta) {
  if (!isActive(meta)) return;
  const known = followed.get(meta.id);
  if (known) {
    // Another job of the same entry: follow that one from its start.
    if (known.meta.job_id === meta.job_id) return;
    known.stream.close();
  }
  const f = { meta: { ...meta }, segments: [], stream: null };
  followed.set(meta.id, f);
  f.stream = followJob(meta.id, {
    progress(p) {
      if (followed.get(meta.id) !== f) return;
      if (f.meta.job_id !== undefined && p.job !== f.meta.job_id) return;
      f.meta = { ...f.meta, status: p.state, progress: p.percent, queue_position: p.queue_position };
      publish('update', f.meta);
    },
    segment(s) {
      if (followed.get(meta.id) !== f) return;
      f.segments.push(s);
      publish('segment', { id: meta.id, segment: s });
    },
    end() {
      if (followed.get(meta.id) === f) settle(meta.id);
    },
  });
}
