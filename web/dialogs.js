// dialogs.js: the page's two modal <dialog>s: a confirmation (used before
// deleting) and the API key prompt. Each returns a promise that settles
// when the dialog closes.

import { apiKey, setApiKey } from './api.js';

export function confirmDialog(title, text, okLabel = 'Delete') {
  const dialog = document.getElementById('confirm-dialog');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okLabel;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
  });
}

let keyPrompt = null;

// keyDialog(reason): asks for the API key; resolves true when a key was
// saved. Concurrent callers (several requests answered 401) share one
// dialog.
export function keyDialog(reason) {
  if (keyPrompt) return keyPrompt;
  const dialog = document.getElementById('key-dialog');
  const input = document.getElementById('key-input');
  document.getElementById('key-text').textContent =
    reason || 'The API key is kept in this browser only and sent with every request.';
  input.value = apiKey();
  document.getElementById('key-clear').hidden = !apiKey();
  dialog.returnValue = '';
  keyPrompt = new Promise((resolve) => {
    dialog.addEventListener(
      'close',
      () => {
        keyPrompt = null;
        const value = input.value.trim();
        if (dialog.returnValue === 'ok' && value) {
          setApiKey(value);
          resolve(true);
        } else {
          if (dialog.returnValue === 'clear') setApiKey('');
          resolve(false);
        }
      },
      { once: true },
    );
    dialog.showModal();
    input.focus();
  });
  return keyPrompt;
}
