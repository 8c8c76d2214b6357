// search.js: the search view (#/search?q=...). The words go to GET /search,
// which looks through every transcript the API key may read; each hit shows
// its file, when it is said and the words around it with the matches
// marked, and opens the player at that moment. "More" fetches the next
// page of hits.

import * as api from './api.js';
import { el, clock } from './format.js';
import { announce } from './ui.js';

const PAGE = 20;
const view = { query: '', offset: 0, token: 0 };
const $ = (id) => document.getElementById(id);

// The server's snippet (its text escaped, matches in <mark>) as nodes:
// only text and <mark> are kept, whatever else it might hold.
function snippetNodes(html) {
  const doc = new DOMParser().parseFromString(`<p>${html}</p>`, 'text/html');
  return [...doc.body.firstChild.childNodes].map((n) =>
    n.nodeName === 'MARK' ? el('mark', {}, n.textContent) : document.createTextNode(n.textContent));
}

function hitItem(h) {
  const href = `#/player/${encodeURIComponent(h.upload_id)}@${h.start.toFixed(2)}`;
  return el('li', { class: 'hit' },
    el('a', { href, class: 'hit-link' },
      el('span', { class: 'hit-file' }, h.filename),
      el('span', { class: 'hit-time' }, `${clock(h.start)} – ${clock(h.end)}`)),
    el('p', { class: 'hit-snippet' }, snippetNodes(h.snippet || h.text)));
}

async function load(append) {
  const token = ++view.token;
  const msg = $('search-message');
  const list = $('search-results');
  const more = $('search-more');
  if (!append) list.replaceChildren();
  more.hidden = true;
  msg.hidden = false;
  msg.textContent = 'Searching…';
  let page;
  try {
    page = await api.search(view.query, view.offset, PAGE);
  } catch (e) {
    if (token !== view.token) return;
    msg.textContent = e.message;
    return;
  }
  if (token !== view.token) return;
  list.append(...page.hits.map(hitItem));
  const shown = list.children.length;
  msg.textContent = page.total === 0 ? `Nothing found for “${view.query}”.`
    : `${page.total} ${page.total === 1 ? 'place' : 'places'} found; ${shown} shown.`;
  announce(msg.textContent);
  view.offset = page.next_offset ?? view.offset;
  more.hidden = page.next_offset === null || page.next_offset === undefined;
}

// showSearch(query): runs the query of the URL (none: an empty view).
export function showSearch(query) {
  $('search-input').value = query;
  if (query === view.query && $('search-results').children.length) return;
  view.query = query;
  view.offset = 0;
  if (!query) {
    view.token++;
    $('search-results').replaceChildren();
    $('search-message').hidden = true;
    $('search-more').hidden = true;
    return;
  }
  load(false);
}

export function initSearch() {
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const q = $('search-input').value.trim();
    location.hash = `#/search?q=${encodeURIComponent(q)}`;
  });
  $('search-more').addEventListener('click', () => load(true));
}
