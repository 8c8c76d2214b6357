// app.js: the page's entry point. It routes between the views by the URL's
// hash (#/ the upload queue, #/history, #/search?q=..., #/player/<id>, or
// #/player/<id>@<seconds> to start there), fills the
// transcription settings from the server, installs the API key prompt and
// owns the announcements read by screen readers.

import * as api from './api.js';
import { keyDialog } from './dialogs.js';
import { initQueue } from './queue.js';
import { initHistory, showHistory } from './history.js';
import { initPlayer, showPlayer, hidePlayer } from './player.js';
import { initSearch, showSearch } from './search.js';
import { announce, toast } from './ui.js';

const LANGUAGES =
  ('en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur ' +
   'hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si ' +
   'km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ' +
   'ha ba jw su yue').split(' ');

function fillLanguages() {
  const select = document.getElementById('opt-language');
  let names = null;
  try {
    names = new Intl.DisplayNames([navigator.language || 'en'], { type: 'language' });
  } catch {
    names = null;
  }
  const special = { jw: 'Javanese', haw: 'Hawaiian', yue: 'Cantonese' };
  const label = (c) => special[c] || (names && names.of(c)) || c;
  select.append(new Option('Detect automatically', 'auto', true, true));
  LANGUAGES.map((c) => [label(c), c])
    .sort((a, b) => a[0].localeCompare(b[0]))
    .forEach(([name, code]) => select.append(new Option(`${name} (${code})`, code)));
}

async function fillModels() {
  const select = document.getElementById('opt-model');
  try {
    const [list, h] = await Promise.all([api.models(), api.health().catch(() => null)]);
    if (h && h.default_model) select.options[0].textContent = `Server default (${h.default_model})`;
    for (const m of list.data || []) {
      if (m.id === 'whisper-1') continue;
      select.append(new Option(m.id, m.id));
    }
  } catch (e) {
    toast(`The model list could not be loaded. ${e.message}`);
  }
}

function route() {
  const hash = location.hash || '#/';
  const views = { upload: 'view-upload', history: 'view-history', search: 'view-search', player: 'view-player' };
  let name = 'upload';
  let arg = null;
  let at = null;
  if (hash.startsWith('#/history')) name = 'history';
  else if (hash.startsWith('#/search')) {
    name = 'search';
    arg = new URLSearchParams(hash.slice('#/search'.length).replace(/^\?/, '')).get('q') || '';
  } else if (hash.startsWith('#/player/')) {
    name = 'player';
    const [id, t] = hash.slice('#/player/'.length).split('@');
    arg = decodeURIComponent(id);
    at = t !== undefined && Number.isFinite(Number(t)) ? Number(t) : null;
  }
  for (const [k, id] of Object.entries(views)) document.getElementById(id).hidden = k !== name;
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (name !== 'player') hidePlayer();
  if (name === 'history') showHistory();
  if (name === 'search') showSearch(arg);
  if (name === 'player') showPlayer(arg, at);
  const titles = { upload: 'Upload', history: 'History', search: 'Search', player: 'Transcript' };
  document.title = `${titles[name]} · hark`;
}

let firstRoute = true;
function onHashChange() {
  route();
  // Focus moves to the new view's heading area so keyboard and screen
  // reader users start there (not on the first load).
  if (!firstRoute) document.getElementById('main').focus({ preventScroll: false });
  firstRoute = false;
}

function init() {
  api.onUnauthorized(() => keyDialog('This server needs an API key. It is kept in this browser only.'));
  document.getElementById('key-button').addEventListener('click', async () => {
    if (await keyDialog()) {
      announce('API key saved.');
      fillModelsAgain();
      route();
    }
  });
  fillLanguages();
  initQueue();
  initHistory();
  initPlayer();
  initSearch();
  window.addEventListener('hashchange', onHashChange);
  onHashChange();
  fillModels();
}

function fillModelsAgain() {
  const select = document.getElementById('opt-model');
  while (select.options.length > 1) select.remove(1);
  fillModels();
}

init();
