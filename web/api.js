// api.js: every request the page makes to hark serve. It adds the API key
// (kept in localStorage) as "Authorization: Bearer" when one is set, asks
// for a key through a handler the app installs when the server answers 401,
// and turns error answers into sentences a person can act on.

const KEY_STORAGE = 'hark.apiKey';

export function apiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || '';
  } catch {
    return '';
  }
}

export function setApiKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // Storage may be disabled; the key then lasts until the page closes.
  }
  memoryKey = key;
}

let memoryKey = '';
function currentKey() {
  return apiKey() || memoryKey;
}

// The app sets this: an async function that asks for a key and resolves
// true when the user gave one (the request is then tried again).
let unauthorizedHandler = async () => false;
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

export class ApiError extends Error {
  constructor(status, body, message) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

function authHeaders() {
  const key = currentKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// A message for an error answer: the server's own message when there is
// one, in a sentence that says what happened.
export function describeError(status, body, what = 'The request') {
  const server = body && body.error && body.error.message ? body.error.message : '';
  const code = body && body.error ? body.error.code : null;
  if (status === 0) return `${what} failed: the server could not be reached. Check that hark serve is running.`;
  if (status === 401) return 'The server needs a valid API key.';
  if (status === 413) return 'This file is larger than the server accepts.';
  if (status === 415 || code === 'unsupported_media')
    return 'This is not an audio or video file the server can read, so it cannot be transcribed.';
  if (status === 404 && code === 'not_ready') return 'The transcript is not ready yet.';
  if (status === 404) return 'Not found: it may have been deleted.';
  if (status === 409 && code === 'job_active') return 'This file is already queued or being transcribed.';
  if (status >= 500) return `The server had a problem${server ? `: ${server}` : ''}. Try again later.`;
  if (server) return server.charAt(0).toUpperCase() + server.slice(1) + '.';
  return `${what} failed (HTTP ${status}).`;
}

async function parseBody(res) {
  const type = res.headers.get('Content-Type') || '';
  if (type.includes('application/json')) {
    try {
      return await res.json();
    } catch {
      return null;
    }
  }
  return res.text();
}

// request(path, {method, json, raw}): the parsed answer of a 2xx response;
// throws ApiError otherwise. A 401 asks for a key and tries once more per
// key given. raw: true returns the Response itself (for blobs).
export async function request(path, options = {}) {
  for (;;) {
    const headers = { ...authHeaders() };
    const init = { method: options.method || 'GET', headers };
    if (options.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.json);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch {
      throw new ApiError(0, null, describeError(0, null, options.what));
    }
    if (res.status === 401 && (await unauthorizedHandler())) continue;
    if (res.ok && options.raw) return res;
    const body = await parseBody(res);
    if (!res.ok) throw new ApiError(res.status, body, describeError(res.status, body, options.what));
    return body;
  }
}

// upload(file, onProgress): starts an upload with XMLHttpRequest so that
// the bytes sent can be shown; returns {done, abort}. done resolves to
// {status, body} for 201 (new) and 409 (already uploaded), and rejects
// with an ApiError otherwise, or with {aborted: true} after abort().
export function upload(file, onProgress) {
  let xhr = null;
  let aborted = false;
  const attempt = () =>
    new Promise((resolve, reject) => {
      xhr = new XMLHttpRequest();
      xhr.open('POST', '/upload');
      const key = currentKey();
      if (key) xhr.setRequestHeader('Authorization', `Bearer ${key}`);
      xhr.responseType = 'text';
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) onProgress(e.loaded, e.total);
      };
      xhr.onload = () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          body = null;
        }
        resolve({ status: xhr.status, body });
      };
      xhr.onerror = () => resolve({ status: 0, body: null });
      xhr.onabort = () => reject({ aborted: true });
      const form = new FormData();
      form.append('file', file, file.name);
      xhr.send(form);
    });
  const done = (async () => {
    for (;;) {
      const { status, body } = await attempt();
      if (status === 401 && !aborted && (await unauthorizedHandler())) continue;
      if (status === 201 || status === 409) return { status, body };
      throw new ApiError(status, body, describeError(status, body, 'The upload'));
    }
  })();
  return {
    done,
    abort() {
      aborted = true;
      if (xhr) xhr.abort();
    },
  };
}

// mediaUrl(path): a URL a <video> or <track> can load. Without a key it
// is the path itself (the browser streams it with range requests); with a
// key the whole file is fetched into a blob, since media elements cannot
// send headers.
export async function mediaUrl(path) {
  if (!currentKey()) return { url: path, revoke() {} };
  const res = await request(path, { raw: true, what: 'Loading the media' });
  const url = URL.createObjectURL(await res.blob());
  return { url, revoke: () => URL.revokeObjectURL(url) };
}

// download(path, fallbackName): fetches a file and saves it through a
// temporary link, so that the key header can be sent.
export async function download(path, fallbackName) {
  const res = await request(path, { raw: true, what: 'The download' });
  const disposition = res.headers.get('Content-Disposition') || '';
  const m = /filename="?([^";]+)"?/i.exec(disposition);
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = m ? m[1] : fallbackName;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return blob;
}

export const getUpload = (id) => request(`/uploads/${encodeURIComponent(id)}`, { what: 'Loading the entry' });

export async function listAllUploads() {
  const all = [];
  let offset = 0;
  for (;;) {
    const page = await request(`/uploads?limit=1000&offset=${offset}`, { what: 'Loading the history' });
    all.push(...page.uploads);
    if (page.next_offset === null || page.next_offset === undefined) return all;
    offset = page.next_offset;
  }
}

export const schedule = (id, settings) =>
  request('/model', { method: 'POST', json: { id, ...settings }, what: 'Scheduling' });

export const cancelJob = (id) =>
  request(`/jobs/${encodeURIComponent(id)}/cancel`, { method: 'POST', what: 'Canceling' });

export const deleteUpload = (id) =>
  request(`/uploads/${encodeURIComponent(id)}`, { method: 'DELETE', what: 'Deleting' });

export const models = () => request('/v1/models', { what: 'Loading the models' });

export const health = () => request('/health', { what: 'Checking the server' });

// whoami(): the key's name and rights ({ name, admin, keyed }).
export const whoami = () => request('/whoami', { what: 'Checking the API key' });

// search(q, offset, limit): a page of GET /search.
export const search = (q, offset = 0, limit = 20) =>
  request(`/search?q=${encodeURIComponent(q)}&offset=${offset}&limit=${limit}`, { what: 'The search' });

export const results = (id) => request(`/results/${encodeURIComponent(id)}`, { what: 'Loading the transcript' });

// followJob(id, on): follows an upload's latest job (or a job by number)
// through GET /jobs/<id>/events. on.progress(data), on.segment(data) and
// on.end(type, data) ("done", "failed", "canceled", or "gone" when there is
// no job to follow) are called as events come. The stream is read with
// fetch, which can send the API key (EventSource cannot); when it breaks
// it is opened again after the server's retry time, with Last-Event-ID, so
// nothing is missed or seen twice. Returns {close}.
export function followJob(id, on) {
  const ctrl = new AbortController();
  let lastId = '';
  let retry = 1000;
  let closed = false;
  const close = () => {
    closed = true;
    ctrl.abort();
  };
  const dispatch = (type, data, eventId) => {
    if (eventId !== null) lastId = eventId;
    let value = null;
    try {
      value = JSON.parse(data);
    } catch {
      return;
    }
    if (type === 'progress') on.progress && on.progress(value);
    else if (type === 'segment') on.segment && on.segment(value);
    else if (type === 'done' || type === 'failed' || type === 'canceled') {
      closed = true;
      on.end && on.end(type, value);
    }
  };
  // Server-Sent Events: fields up to a blank line make one event.
  const read = async (res) => {
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    let type = 'message';
    let data = [];
    let eventId = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
        if (line === '') {
          if (data.length) dispatch(type, data.join('\n'), eventId);
          type = 'message';
          data = [];
          eventId = null;
          if (closed) return;
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const v = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') type = v;
        else if (field === 'data') data.push(v);
        else if (field === 'id') eventId = v;
        else if (field === 'retry' && /^\d+$/.test(v)) retry = Number(v);
      }
    }
  };
  (async () => {
    while (!closed) {
      try {
        const headers = { ...authHeaders(), Accept: 'text/event-stream' };
        if (lastId) headers['Last-Event-ID'] = lastId;
        const res = await fetch(`/jobs/${encodeURIComponent(id)}/events`, { headers, signal: ctrl.signal });
        if (res.status === 401 && (await unauthorizedHandler())) continue;
        if (res.status === 204 || res.status === 404 || res.status === 401 || res.status === 403) {
          if (!closed) on.end && on.end('gone', null);
          return;
        }
        if (res.ok) await read(res);
      } catch {
        // A broken stream: tried again below.
      }
      if (closed) return;
      await new Promise((resolve) => setTimeout(resolve, retry));
    }
  })();
  return { close };
}
