// store.js: what the page knows about uploads, shared by the views. Views
// call watch(id) for entries with a queued or running job; while any is
// watched, each is fetched about once a second and every change is sent to
// the listeners as ("update", metadata) or ("deleted", id).

import { getUpload, ApiError } from './api.js';
import { isActive } from './format.js';

const listeners = new Set();
const watched = new Set();
let timer = null;

export function subscribe(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function publish(kind, value) {
  for (const fn of listeners) fn(kind, value);
}

export function watch(meta) {
  if (!isActive(meta)) return;
  watched.add(meta.id);
  if (!timer) timer = setTimeout(poll, 1000);
}

async function poll() {
  timer = null;
  await Promise.all(
    [...watched].map(async (id) => {
      try {
        const meta = await getUpload(id);
        if (!isActive(meta)) watched.delete(id);
        publish('update', meta);
      } catch (e) {
        if (e instanceof ApiError && e.status === 404) {
          watched.delete(id);
          publish('deleted', id);
        }
      }
    }),
  );
  if (watched.size && !timer) timer = setTimeout(poll, 1000);
}
