// queue.js: the upload queue. Files dropped or picked become rows; each
// is uploaded (two at a time) with a progress bar of the bytes sent and a
// cancel button. An upload the server already has (409) shows as "already
// uploaded" with a link to that entry. Uploaded rows are scheduled with
// the settings form, per row or all at once, and follow their job through
// its event stream (store.js): the status, and the transcript's latest
// words as they are decoded, until the transcript is ready.

import * as api from './api.js';
import { el, bytes, status, isActive, seconds } from './format.js';
import { subscribe, watch } from './store.js';
import { announce, settings } from './ui.js';

const MAX_PARALLEL = 2;
const LIVE_CHARS = 240; // of the transcript so far, shown under a running job
const items = [];
let nextKey = 1;

function addFiles(files) {
  for (const file of files) {
    const item = {
      key: nextKey++,
      file,
      name: file.name,
      size: file.size,
      state: 'waiting',
      loaded: 0,
      meta: null,
      duplicate: false,
      error: '',
      scheduleWhenUploaded: false,
      handle: null,
      live: '',
    };
    items.push(item);
    document.getElementById('queue').append(buildRow(item));
    update(item);
  }
  document.getElementById('queue-empty').hidden = items.length > 0;
  announce(`${files.length} file${files.length === 1 ? '' : 's'} added to the queue.`);
  pump();
}

function buildRow(item) {
  const id = `q${item.key}`;
  const r = {};
  r.progress = el('progress', { id: `${id}-bar`, max: 100, value: 0, 'aria-label': `Progress of ${item.name}` });
  r.status = el('span', { class: 'status', id: `${id}-status` });
  r.note = el('p', { class: 'note', hidden: true });
  r.live = el('p', { class: 'live-text', hidden: true, title: 'The transcript so far' });
  r.error = el('p', { class: 'error', role: 'alert', hidden: true });
  r.cancelUpload = el('button', { type: 'button', 'aria-describedby': `${id}-name`, onclick: () => cancelUpload(item) }, 'Cancel upload');
  r.transcribe = el('button', { type: 'button', class: 'primary', 'aria-describedby': `${id}-name`, onclick: () => transcribe(item) }, 'Transcribe');
  r.cancelJob = el('button', { type: 'button', 'aria-describedby': `${id}-name`, onclick: () => cancelJob(item) }, 'Cancel job');
  r.open = el('a', { class: 'button', href: '#/', 'aria-describedby': `${id}-name` }, 'Open transcript');
  r.dismiss = el('button', { type: 'button', class: 'ghost', 'aria-describedby': `${id}-name`, onclick: () => dismiss(item) }, 'Remove from list');
  r.row = el(
    'li',
    { class: 'row', 'data-name': item.name, tabindex: -1 },
    el('div', { class: 'row-head' },
      el('span', { class: 'name', id: `${id}-name` }, item.name),
      el('span', { class: 'size' }, bytes(item.size))),
    r.progress,
    el('div', { class: 'row-foot' }, r.status,
      el('div', { class: 'actions' }, r.cancelUpload, r.transcribe, r.cancelJob, r.open, r.dismiss)),
    r.live,
    r.note,
    r.error,
  );
  item.r = r;
  return r.row;
}

// update(item): the row shows the item's current state.
function update(item) {
  const r = item.r;
  if (!r) return;
  const hadFocus = r.row.contains(document.activeElement) && document.activeElement !== r.row;
  const m = item.meta;
  const state = item.state === 'entry' && m ? m.status : item.state;
  r.row.dataset.state = state;
  let text = '';
  let value = 0;
  if (item.state === 'waiting') text = 'Waiting to upload';
  else if (item.state === 'uploading') {
    value = item.size ? (100 * item.loaded) / item.size : 0;
    text = `Uploading ${Math.floor(value)} % (${bytes(item.loaded)} of ${bytes(item.size)})`;
  } else if (item.state === 'canceled') text = 'Upload canceled';
  else if (item.state === 'error') text = 'Upload failed';
  else if (item.state === 'deleted') text = 'Deleted from the history';
  else if (m) {
    if (m.status === 'uploaded') {
      value = 100;
      text = item.duplicate ? 'Already uploaded' : 'Uploaded 100 %';
    } else if (m.status === 'done') {
      value = 100;
      text = m.time !== undefined ? `Done in ${seconds(m.time)}` : 'Done';
    } else {
      value = m.progress || 0;
      text = status(m);
      if (m.status === 'failed' && m.error) text += `: ${m.error}`;
    }
  }
  r.progress.value = Math.min(100, value);
  r.status.textContent = text;
  r.row.dataset.progress = String(Math.floor(value));

  const entry = !!m && item.state === 'entry';
  r.cancelUpload.hidden = !(item.state === 'waiting' || item.state === 'uploading');
  r.transcribe.hidden = !(entry && !isActive(m));
  r.transcribe.textContent = entry && m.status === 'done' ? 'Transcribe again' : 'Transcribe';
  r.cancelJob.hidden = !(entry && isActive(m));
  r.open.hidden = !(entry && m.status === 'done');
  if (entry) r.open.href = `#/player/${encodeURIComponent(m.id)}`;
  r.dismiss.hidden = item.state === 'waiting' || item.state === 'uploading' || (entry && isActive(m));

  // While the job runs, the end of what it has transcribed so far.
  r.live.hidden = !(entry && isActive(m) && item.live);
  r.live.textContent = item.live || '';

  r.note.hidden = !item.duplicate;
  if (item.duplicate && m && !r.note.firstChild) {
    r.note.append('Already uploaded: this file is in the history as ',
      el('a', { href: `#/player/${encodeURIComponent(m.id)}` }, m.filename),
      m.upload_date ? ` (uploaded ${new Date(m.upload_date).toLocaleString()}).` : '.');
  }
  r.error.hidden = !item.error;
  r.error.textContent = item.error;

  // A focused button that just went away hands the focus to the row's
  // next useful control, so keyboard users are not thrown to the top.
  if (hadFocus && (document.activeElement === document.body || document.activeElement.hidden)) {
    const next = [r.open, r.cancelJob, r.transcribe, r.dismiss].find((b) => !b.hidden);
    (next || r.row).focus();
  }
}

function pump() {
  const running = items.filter((i) => i.state === 'uploading').length;
  const waiting = items.filter((i) => i.state === 'waiting');
  for (const item of waiting.slice(0, Math.max(0, MAX_PARALLEL - running))) start(item);
}

async function start(item) {
  item.state = 'uploading';
  item.loaded = 0;
  update(item);
  item.handle = api.upload(item.file, (loaded) => {
    item.loaded = Math.min(loaded, item.size);
    update(item);
  });
  try {
    const { status: code, body } = await item.handle.done;
    const { error, ...meta } = body || {};
    item.meta = meta;
    item.duplicate = code === 409;
    item.state = 'entry';
    item.loaded = item.size;
    announce(item.duplicate ? `${item.name} was already uploaded.` : `${item.name} uploaded.`);
    if (item.scheduleWhenUploaded && !isActive(meta)) transcribe(item);
    else watch(meta);
  } catch (e) {
    if (e && e.aborted) {
      item.state = 'canceled';
      announce(`Upload of ${item.name} canceled.`);
    } else {
      item.state = 'error';
      item.error = `${item.name}: ${e.message || 'the upload failed.'}`;
      announce(item.error);
    }
  }
  item.handle = null;
  update(item);
  pump();
}

function cancelUpload(item) {
  if (item.state === 'uploading' && item.handle) item.handle.abort();
  else if (item.state === 'waiting') {
    item.state = 'canceled';
    update(item);
  }
}

async function transcribe(item) {
  if (!item.meta) return;
  item.error = '';
  try {
    item.meta = await api.schedule(item.meta.id, settings());
    announce(`${item.name}: transcription queued.`);
  } catch (e) {
    if (e.status === 409 && e.body && e.body.id) {
      const { error, ...meta } = e.body;
      item.meta = meta;
    } else item.error = `${item.name}: ${e.message}`;
  }
  update(item);
  watch(item.meta);
}

async function cancelJob(item) {
  item.error = '';
  try {
    item.meta = await api.cancelJob(item.meta.id);
    announce(`${item.name}: job canceled.`);
  } catch (e) {
    item.error = `${item.name}: ${e.message}`;
  }
  update(item);
}

function dismiss(item) {
  const i = items.indexOf(item);
  if (i >= 0) items.splice(i, 1);
  const row = item.r.row;
  const next = row.nextElementSibling || row.previousElementSibling;
  row.remove();
  document.getElementById('queue-empty').hidden = items.length > 0;
  if (next) next.focus();
  else document.getElementById('file-input').focus();
}

function transcribeAll(event) {
  event.preventDefault();
  let n = 0;
  const ids = new Set();
  for (const item of items) {
    // Two rows of the same entry (a duplicate upload) make one job.
    if (item.meta && ids.has(item.meta.id)) continue;
    if (item.meta) ids.add(item.meta.id);
    if (item.state === 'waiting' || item.state === 'uploading') {
      item.scheduleWhenUploaded = true;
      n++;
    } else if (item.state === 'entry' && item.meta && ['uploaded', 'failed', 'canceled'].includes(item.meta.status)) {
      transcribe(item);
      n++;
    }
  }
  announce(n ? `Scheduling ${n} file${n === 1 ? '' : 's'}.` : 'Nothing to transcribe: upload files first.');
}

export function initQueue() {
  const input = document.getElementById('file-input');
  input.addEventListener('change', () => {
    if (input.files.length) addFiles([...input.files]);
    input.value = '';
  });
  const zone = document.getElementById('view-upload');
  const drop = document.getElementById('drop');
  zone.addEventListener('dragover', (e) => {
    if (![...e.dataTransfer.types].includes('Files')) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
    drop.classList.add('over');
  });
  zone.addEventListener('dragleave', (e) => {
    if (!zone.contains(e.relatedTarget)) drop.classList.remove('over');
  });
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer.files.length) addFiles([...e.dataTransfer.files]);
  });
  document.getElementById('schedule').addEventListener('submit', transcribeAll);
  subscribe((kind, value) => {
    for (const item of items) {
      if (!item.meta) continue;
      if (kind === 'update' && item.meta.id === value.id) {
        const was = item.meta.status;
        if (value.job_id !== item.meta.job_id) item.live = '';
        item.meta = value;
        if (was !== value.status && value.status === 'done') announce(`${item.name}: transcript ready.`);
        if (was !== value.status && value.status === 'failed') announce(`${item.name}: transcription failed.`);
        update(item);
      } else if (kind === 'segment' && item.meta.id === value.id) {
        const text = `${item.live || ''}${value.segment.text || ''}`.trim();
        item.live = text.length > LIVE_CHARS ? `…${text.slice(text.length - LIVE_CHARS).trimStart()}` : text;
        update(item);
      } else if (kind === 'deleted' && item.meta.id === value) {
        item.state = 'deleted';
        update(item);
      }
    }
  });
}
