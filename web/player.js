// player.js: one entry's transcript beside its media. The segment being
// spoken is highlighted and kept in view while the media plays; clicking a
// segment seeks there; the WebVTT result is the video's captions track.
// Where results.json has word timestamps, each word is an element of its
// own: the word being spoken is marked inside the current segment (found by
// binary search, every animation frame while playing), a click on a word
// seeks to its start, and a word the model was unsure of is underlined.
// An entry without a transcript shows its status and can be scheduled from
// here; while its job runs, the media plays beside the transcript as it is
// written (store.js follows the job's events), and the finished transcript
// takes its place when the job is done. When speech detection ran,
// a timeline under the video greys out the stretches without speech
// (clicking it seeks) and playback can skip them.

import * as api from './api.js';
import { el, clock, seconds, status, isActive } from './format.js';
import { subscribe, watch, liveSegments } from './store.js';
import { announce, settings, toast } from './ui.js';

const state = {
  id: null,
  meta: null,
  result: null,
  segments: [],
  active: -1,
  words: [],
  word: null,
  frame: 0,
  speech: [],
  revokers: [],
  token: 0,
  at: null,
  live: false,
  media: false,
};

const $ = (id) => document.getElementById(id);

function releaseMedia() {
  const video = $('player-video');
  video.pause();
  for (const t of [...video.querySelectorAll('track')]) t.remove();
  video.removeAttribute('src');
  video.load();
  for (const r of state.revokers) r();
  state.revokers = [];
  state.media = false;
}

export function hidePlayer() {
  if (state.id === null) return;
  state.token++;
  state.id = null;
  releaseMedia();
}

function showMeta(meta) {
  $('player-title').textContent = meta.filename;
  const parts = [clock(meta.duration_s)];
  if (meta.model_ran) parts.push(meta.model);
  if (meta.language) parts.push(`language ${meta.language}`);
  if (meta.time !== undefined) parts.push(`transcribed in ${seconds(meta.time)}`);
  $('player-meta').textContent = parts.join(' · ');
}

function showPending(meta) {
  if (!state.live) $('player-body').hidden = true;
  $('player-pending').hidden = false;
  let text = `Status: ${status(meta)}.`;
  if (meta.status === 'uploaded') text = 'This file has not been transcribed yet.';
  if (meta.status === 'failed') text = `The transcription failed${meta.error ? `: ${meta.error}` : ''}.`;
  if (meta.status === 'canceled') text = 'The transcription was canceled.';
  $('player-status').textContent = text;
  $('player-progress').value = meta.progress || 0;
  $('player-progress').hidden = !isActive(meta);
  $('player-transcribe').hidden = isActive(meta);
}

// seekTo(t): the media at t seconds, now or once it knows its duration.
function seekTo(t) {
  const video = $('player-video');
  if (video.readyState >= 1) video.currentTime = t;
  else video.addEventListener('loadedmetadata', () => { video.currentTime = t; }, { once: true });
}

// showPlayer(id, at): the entry's transcript and media; at (seconds, or
// null) is where the media starts, as a search hit asks.
export async function showPlayer(id, at = null) {
  if (state.id === id) {
    if (at !== null && state.result) seekTo(at);
    return;
  }
  hidePlayer();
  const token = ++state.token;
  state.id = id;
  state.result = null;
  state.live = false;
  state.at = at;
  $('player-title').textContent = 'Transcript';
  $('player-meta').textContent = 'Loading…';
  $('player-body').hidden = true;
  $('player-pending').hidden = true;
  try {
    const meta = await api.getUpload(id);
    if (token !== state.token) return;
    state.meta = meta;
    showMeta(meta);
    if (meta.status === 'done') await showTranscript(meta, token);
    else if (isActive(meta)) {
      watch(meta);
      showLive(meta, token);
    } else showPending(meta);
  } catch (e) {
    if (token !== state.token) return;
    $('player-meta').textContent = e.message;
  }
}

// showLive(meta, token): a running (or queued) job: its status, the media,
// and the segments decoded so far, to which each new one is added.
function showLive(meta, token) {
  state.live = true;
  state.result = null;
  state.segments = liveSegments(meta.id);
  state.active = -1;
  state.word = null;
  showPending(meta);
  $('player-body').hidden = false;
  $('player-body').dataset.live = 'true';
  for (const b of document.querySelectorAll('#player-body [data-format]')) b.hidden = true;
  $('speech').hidden = true;
  renderSegments();
  loadMedia(meta, token);
}

// loadMedia(meta, token): the entry's media into the video (once).
async function loadMedia(meta, token) {
  if (state.media) return;
  state.media = true;
  const video = $('player-video');
  const note = $('player-media-note');
  note.hidden = true;
  try {
    const media = await api.mediaUrl(meta.location);
    if (token !== state.token) {
      media.revoke();
      return;
    }
    state.revokers.push(media.revoke);
    video.src = media.url;
    if (state.at !== null) seekTo(state.at);
  } catch (e) {
    state.media = false;
    note.hidden = false;
    note.textContent = `The media could not be loaded. ${e.message}`;
  }
}

async function showTranscript(meta, token) {
  let result;
  try {
    result = await api.results(meta.id);
  } catch (e) {
    if (token === state.token) $('player-meta').textContent = e.message;
    return;
  }
  if (token !== state.token) return;
  state.live = false;
  state.result = result;
  state.segments = result.segments || [];
  state.active = -1;
  state.word = null;
  $('player-pending').hidden = true;
  $('player-body').hidden = false;
  delete $('player-body').dataset.live;
  for (const b of document.querySelectorAll('#player-body [data-format]')) b.hidden = false;
  renderSegments();
  renderSpeech(result);
  highlight();

  await loadMedia(meta, token);
  if (token !== state.token) return;
  const video = $('player-video');
  const note = $('player-media-note');
  try {
    const vtt = await api.mediaUrl(`/results/${encodeURIComponent(meta.id)}?format=vtt`);
    if (token !== state.token) {
      vtt.revoke();
      return;
    }
    state.revokers.push(vtt.revoke);
    for (const t of [...video.querySelectorAll('track')]) t.remove();
    const track = el('track', {
      kind: 'captions',
      label: `Transcript${result.language ? ` (${result.language})` : ''}`,
      srclang: result.language || 'und',
      src: vtt.url,
      default: true,
    });
    track.addEventListener('error', () => {
      note.hidden = false;
      note.textContent = 'The captions could not be loaded.';
    });
    video.append(track);
    track.track.mode = 'showing';
  } catch (e) {
    note.hidden = false;
    note.textContent = `The captions could not be loaded. ${e.message}`;
  }
}

// wordSpan(w): one word as an element carrying its times; a word with a
// probability under one half gets the "unsure" look and a tooltip.
function wordSpan(w) {
  const p = Number(w.probability);
  const unsure = Number.isFinite(p) && p < 0.5;
  return el('span', {
    class: unsure ? 'word unsure' : 'word',
    'data-start': w.start,
    'data-end': w.end,
    title: unsure ? `Probability ${Math.round(100 * p)} %` : null,
  }, w.text);
}

// segmentText(s): the nodes of a segment's text and its word elements. The
// words are found in the text in order so that it reads the same, with its
// own spacing and punctuation; words that are not all in the text are shown
// joined by single spaces. Without words it is the text alone.
function segmentText(s) {
  const text = (s.text || '').trim();
  const words = (Array.isArray(s.words) ? s.words : [])
    .map((w) => ({ text: String(w.word ?? '').trim(), start: Number(w.start), end: Number(w.end),
      probability: w.probability }))
    .filter((w) => w.text && Number.isFinite(w.start) && Number.isFinite(w.end));
  if (!words.length) return { nodes: [text || '…'], words: [] };
  const nodes = [];
  let at = 0;
  for (const w of words) {
    const k = text.indexOf(w.text, at);
    if (k < 0) {
      nodes.length = 0;
      break;
    }
    if (k > at) nodes.push(text.slice(at, k));
    w.el = wordSpan(w);
    nodes.push(w.el);
    at = k + w.text.length;
  }
  if (nodes.length) {
    if (at < text.length) nodes.push(text.slice(at));
  } else {
    words.forEach((w, i) => {
      if (i) nodes.push(' ');
      w.el = wordSpan(w);
      nodes.push(w.el);
    });
  }
  return { nodes, words };
}

function renderSegments() {
  const list = $('segments');
  state.words = [];
  state.word = null;
  list.replaceChildren(
    ...state.segments.map((s, i) => {
      const { nodes, words } = segmentText(s);
      state.words.push(words);
      return el('li', {},
        el('button', { type: 'button', class: 'seg', 'data-index': i, 'data-start': s.start },
          el('span', { class: 'time' }, `${clock(s.start)}–${clock(s.end)}`),
          el('span', { class: 'text' }, nodes)));
    }),
  );
  if (!state.segments.length)
    list.append(el('li', { class: 'empty' },
      state.live ? 'The transcript appears here as it is written.' : 'No speech was found.'));
}

function renderSpeech(result) {
  const box = $('speech');
  const vad = result.vad;
  const duration = result.duration || 0;
  state.speech = vad && Array.isArray(vad.speech) ? vad.speech : [];
  box.hidden = !vad || !(duration > 0);
  const line = $('speech-timeline');
  for (const s of [...line.querySelectorAll('.span')]) s.remove();
  if (box.hidden) return;
  let total = 0;
  for (const s of state.speech) {
    const span = el('span', { class: 'span' });
    span.style.left = `${(100 * s.start) / duration}%`;
    span.style.width = `${(100 * Math.max(0, s.end - s.start)) / duration}%`;
    line.append(span);
    total += Math.max(0, s.end - s.start);
  }
  const summary = state.speech.length
    ? `Speech: ${seconds(total)} of ${clock(duration)} in ${state.speech.length} stretch${state.speech.length === 1 ? '' : 'es'}; the rest was not transcribed.`
    : 'No speech was found in this recording.';
  $('speech-summary').textContent = summary;
  line.setAttribute('aria-label', `Timeline. ${summary}`);
  $('skip-silence').disabled = !state.speech.length;
  movePlayhead();
}

function movePlayhead() {
  const duration = state.result && state.result.duration;
  if (!duration || $('speech').hidden) return;
  const t = $('player-video').currentTime || 0;
  $('speech-playhead').style.left = `${Math.min(100, (100 * t) / duration)}%`;
}

// With "skip" on, playback that reaches a stretch without speech jumps to
// where the next speech starts (or to the end).
function skipSilence() {
  const video = $('player-video');
  if (!$('skip-silence').checked || video.paused || !state.speech.length) return;
  const t = video.currentTime;
  if (state.speech.some((s) => t >= s.start - 0.05 && t < s.end)) return;
  const next = state.speech.find((s) => s.start > t);
  const to = next ? next.start : video.duration;
  if (Number.isFinite(to) && to > t + 0.25) video.currentTime = to;
}

// lastAtOrBefore(items, t): the index of the last item whose start is at
// or before t (items sorted by start), or -1.
function lastAtOrBefore(items, t) {
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (items[mid].start <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

// The word of the current segment whose [start, end) holds the time; none
// between words.
function highlightWord(t) {
  const words = state.active >= 0 ? state.words[state.active] || [] : [];
  const k = lastAtOrBefore(words, t);
  const node = k >= 0 && t < words[k].end ? words[k].el : null;
  if (node === state.word) return;
  if (state.word) state.word.classList.remove('current');
  state.word = node;
  if (node) node.classList.add('current');
}

function highlight() {
  const t = $('player-video').currentTime;
  let idx = lastAtOrBefore(state.segments, t + 0.01);
  if (idx >= 0 && t > state.segments[idx].end + 0.01 && idx + 1 < state.segments.length) idx = -1;
  if (idx !== state.active) highlightSegment(idx);
  highlightWord(t);
}

// While the media plays, the highlight follows it every frame (timeupdate
// alone comes a few times a second, too seldom for words).
function follow() {
  const video = $('player-video');
  state.frame = 0;
  highlight();
  if (!video.paused && !video.ended) state.frame = requestAnimationFrame(follow);
}

function highlightSegment(idx) {
  const list = $('segments');
  const old = list.querySelector('.seg[aria-current]');
  if (old) old.removeAttribute('aria-current');
  state.active = idx;
  if (idx < 0) return;
  const btn = list.querySelector(`.seg[data-index="${idx}"]`);
  if (!btn) return;
  btn.setAttribute('aria-current', 'true');
  // Scroll the list (not the page) so the segment is in view.
  const item = btn.parentElement;
  const top = item.offsetTop - list.offsetTop;
  if (top < list.scrollTop || top + item.offsetHeight > list.scrollTop + list.clientHeight)
    list.scrollTo({ top: Math.max(0, top - list.clientHeight / 3), behavior: 'smooth' });
}

async function copyText() {
  const text = (state.result && state.result.text ? state.result.text : state.segments.map((s) => s.text).join(' ')).trim();
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = el('textarea', { class: 'visually-hidden', readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand('copy');
    area.remove();
    if (!ok) {
      toast('The text could not be copied: the browser does not allow it here.');
      return;
    }
  }
  announce('Transcript text copied.');
  $('player-copy').textContent = 'Copied';
  setTimeout(() => {
    $('player-copy').textContent = 'Copy text';
  }, 2000);
}

export function initPlayer() {
  const video = $('player-video');
  video.addEventListener('timeupdate', highlight);
  video.addEventListener('seeked', highlight);
  video.addEventListener('play', () => {
    if (!state.frame) state.frame = requestAnimationFrame(follow);
  });
  video.addEventListener('timeupdate', movePlayhead);
  video.addEventListener('seeked', movePlayhead);
  video.addEventListener('timeupdate', skipSilence);
  video.addEventListener('play', skipSilence);
  $('speech-timeline').addEventListener('click', (e) => {
    const duration = state.result && state.result.duration;
    if (!duration) return;
    const box = e.currentTarget.getBoundingClientRect();
    video.currentTime = Math.max(0, Math.min(1, (e.clientX - box.left) / box.width)) * duration;
  });
  $('skip-silence').addEventListener('change', () => {
    announce($('skip-silence').checked ? 'Parts without speech will be skipped.' : 'Playing everything.');
    skipSilence();
  });
  $('segments').addEventListener('click', (e) => {
    const btn = e.target.closest('.seg');
    if (!btn) return;
    const s = state.segments[Number(btn.dataset.index)];
    if (!s) return;
    const word = e.target.closest('.word');
    video.currentTime = word ? Number(word.dataset.start) : s.start;
    highlight();
  });
  for (const b of document.querySelectorAll('#player-body [data-format]')) {
    b.addEventListener('click', async () => {
      if (!state.meta) return;
      const f = b.dataset.format;
      const base = state.meta.filename.replace(/\.[^.]*$/, '') || 'transcript';
      try {
        await api.download(`/results/${encodeURIComponent(state.meta.id)}?format=${f}&download=1`, `${base}.${f}`);
        announce(`${f.toUpperCase()} downloaded.`);
      } catch (e) {
        toast(e.message);
      }
    });
  }
  $('player-copy').addEventListener('click', copyText);
  $('player-transcribe').addEventListener('click', async () => {
    if (!state.meta) return;
    try {
      const meta = await api.schedule(state.meta.id, settings());
      state.meta = meta;
      watch(meta);
      showLive(meta, state.token);
      announce('Transcription queued.');
      $('player-status').focus();
    } catch (e) {
      toast(e.message);
    }
  });
  subscribe((kind, value) => {
    if (state.id === null) return;
    if (kind === 'deleted' && value === state.id) {
      $('player-meta').textContent = 'This entry was deleted.';
      $('player-pending').hidden = true;
      $('player-body').hidden = true;
      releaseMedia();
      return;
    }
    if (kind === 'segment' && value.id === state.id && state.live) {
      state.segments.push(value.segment);
      renderSegments();
      highlight();
      return;
    }
    if (kind !== 'update' || value.id !== state.id || state.result) return;
    state.meta = value;
    showMeta(value);
    if (value.status === 'done') {
      const hadFocus = $('player-pending').contains(document.activeElement);
      announce('The transcript is ready.');
      showTranscript(value, state.token).then(() => {
        if (hadFocus) $('segments-title').focus();
      });
    } else showPending(value);
  });
}
