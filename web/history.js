// history.js: the table of every upload the API key may see (its own, or
// every owner's for an admin key; a line above the table says which). The
// whole history is fetched from GET /uploads page by page (1000 entries a
// request), then filtered by name, sorted and cut into pages here, so the
// filter and the sort cover every entry and not just one server page.
// Entries with an active job are watched and their rows follow the job.
// Delete asks first in a <dialog>.

import * as api from './api.js';
import { el, bytes, clock, date, seconds, status } from './format.js';
import { subscribe, watch } from './store.js';
import { confirmDialog } from './dialogs.js';
import { announce, toast } from './ui.js';

const view = {
  all: [],
  loaded: false,
  filter: '',
  key: 'upload_date',
  dir: -1,
  page: 0,
  size: 10,
};

const TEXT_KEYS = new Set(['filename', 'model', 'status']);

function visible() {
  return !document.getElementById('view-history').hidden;
}

function compare(a, b) {
  const k = view.key;
  let x = a[k];
  let y = b[k];
  if (k === 'model') {
    x = a.model_ran ? a.model : '';
    y = b.model_ran ? b.model : '';
  }
  const missing = (v) => v === undefined || v === null || v === '';
  if (missing(x) && missing(y)) return 0;
  if (missing(x)) return 1;
  if (missing(y)) return -1;
  const c = TEXT_KEYS.has(k) ? String(x).localeCompare(String(y), undefined, { numeric: true, sensitivity: 'base' })
    : x < y ? -1 : x > y ? 1 : 0;
  return c * view.dir;
}

function rows() {
  const f = view.filter.trim().toLowerCase();
  const list = f ? view.all.filter((m) => m.filename.toLowerCase().includes(f)) : view.all.slice();
  return list.sort(compare);
}

function render() {
  const body = document.getElementById('history-body');
  const focused = document.activeElement;
  const focusId = body.contains(focused) ? focused.closest('tr')?.dataset.id : null;
  const focusAction = body.contains(focused) ? focused.dataset.action : null;

  const list = rows();
  const pages = Math.max(1, Math.ceil(list.length / view.size));
  view.page = Math.min(view.page, pages - 1);
  const shown = list.slice(view.page * view.size, (view.page + 1) * view.size);

  body.replaceChildren(...shown.map(renderRow));
  const message = document.getElementById('history-message');
  message.hidden = !view.loaded || shown.length > 0;
  message.textContent = view.all.length ? `No file name contains “${view.filter.trim()}”.` : 'Nothing uploaded yet.';
  document.getElementById('history-page').textContent =
    `Page ${view.page + 1} of ${pages} · ${list.length} ${list.length === 1 ? 'entry' : 'entries'}`;
  document.getElementById('history-prev').disabled = view.page === 0;
  document.getElementById('history-next').disabled = view.page >= pages - 1;
  for (const th of document.querySelectorAll('#history-table th[data-key]')) {
    if (th.dataset.key === view.key) th.setAttribute('aria-sort', view.dir > 0 ? 'ascending' : 'descending');
    else th.removeAttribute('aria-sort');
  }
  if (focusId) {
    const again = body.querySelector(`tr[data-id="${CSS.escape(focusId)}"] [data-action="${focusAction}"]`);
    if (again) again.focus();
  }
}

function renderRow(m) {
  const open = `#/player/${encodeURIComponent(m.id)}`;
  const cell = (label, ...content) => el('td', { 'data-label': label }, ...content);
  return el(
    'tr',
    { 'data-id': m.id, 'data-status': m.status },
    el('th', { scope: 'row', 'data-label': 'Name' }, el('a', { href: open, 'data-action': 'open' }, m.filename)),
    cell('Size', bytes(m.size)),
    cell('Duration', clock(m.duration_s)),
    cell('Uploaded', el('time', { datetime: m.upload_date }, date(m.upload_date))),
    cell('Model', m.model_ran ? m.model : '—'),
    cell('Status', el('span', { class: `badge ${m.status}` }, status(m))),
    cell('Time taken', m.time !== undefined ? seconds(m.time) : '—'),
    el('td', { class: 'row-actions' },
      el('button', {
        type: 'button',
        class: 'danger ghost',
        'data-action': 'delete',
        'aria-label': `Delete ${m.filename}`,
        onclick: () => remove(m),
      }, 'Delete')),
  );
}

async function remove(m) {
  const ok = await confirmDialog(`Delete ${m.filename}?`,
    'The media file and its transcript are removed from the server. This cannot be undone.');
  if (!ok) return;
  try {
    await api.deleteUpload(m.id);
    view.all = view.all.filter((x) => x.id !== m.id);
    announce(`${m.filename} deleted.`);
  } catch (e) {
    if (e.status === 404) view.all = view.all.filter((x) => x.id !== m.id);
    else toast(`${m.filename} could not be deleted. ${e.message}`);
  }
  render();
  document.getElementById('history-filter').focus();
}

// Says whose history this is, from GET /whoami: the key's name, or every
// owner's for an admin key. A server without keys has one user, and
// nothing is said.
async function showOwner() {
  const line = document.getElementById('history-owner');
  try {
    const me = await api.whoami();
    if (!me.keyed) {
      line.hidden = true;
      return;
    }
    if (!me.admin) line.textContent = `The uploads of “${me.name}”.`;
    else if (me.name) line.textContent = `Every user’s uploads (admin key “${me.name}”).`;
    else line.textContent = 'Every user’s uploads (the server’s own key).';
    line.hidden = false;
  } catch {
    line.hidden = true;
  }
}

async function load() {
  const message = document.getElementById('history-message');
  try {
    view.all = await api.listAllUploads();
    view.loaded = true;
    for (const m of view.all) watch(m);
    render();
    showOwner();
  } catch (e) {
    message.hidden = false;
    message.textContent = `The history could not be loaded. ${e.message}`;
  }
}

export function showHistory() {
  load();
}

export function initHistory() {
  const filter = document.getElementById('history-filter');
  filter.addEventListener('input', () => {
    view.filter = filter.value;
    view.page = 0;
    render();
  });
  const size = document.getElementById('history-size');
  size.addEventListener('change', () => {
    view.size = Number(size.value);
    view.page = 0;
    render();
  });
  document.getElementById('history-prev').addEventListener('click', () => {
    view.page = Math.max(0, view.page - 1);
    render();
  });
  document.getElementById('history-next').addEventListener('click', () => {
    view.page++;
    render();
  });
  document.getElementById('history-refresh').addEventListener('click', () => load());
  for (const th of document.querySelectorAll('#history-table th[data-key]')) {
    th.querySelector('button').addEventListener('click', () => {
      const k = th.dataset.key;
      if (view.key === k) view.dir = -view.dir;
      else {
        view.key = k;
        view.dir = TEXT_KEYS.has(k) ? 1 : -1;
      }
      render();
    });
  }
  subscribe((kind, value) => {
    if (kind === 'update') {
      const i = view.all.findIndex((m) => m.id === value.id);
      if (i >= 0) view.all[i] = value;
      else if (!view.loaded) return;
      else view.all.push(value);
    } else if (kind === 'deleted') view.all = view.all.filter((m) => m.id !== value);
    if (visible()) render();
  });
}
