// ui.js: small page-wide helpers: screen reader announcements, a toast
// for errors that belong to no row, and the chosen transcription settings.

// announce(text): a polite screen reader announcement.
export function announce(text) {
  const live = document.getElementById('live');
  live.textContent = '';
  setTimeout(() => {
    live.textContent = text;
  }, 50);
}

// toast(text): a visible message that goes away by itself (errors that
// belong to no row, e.g. a failed delete).
let toastTimer = null;
export function toast(text) {
  const t = document.getElementById('toast');
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    t.hidden = true;
  }, 6000);
}

// settings(): the transcription settings chosen in the form.
export function settings() {
  const model = document.getElementById('opt-model').value;
  const s = {
    language: document.getElementById('opt-language').value,
    task: document.getElementById('opt-task').value,
  };
  if (model) s.model = model;
  return s;
}
