/** The demo page's elements and what both of its chats (a pair, a group) do with them. */
import { PairupError } from '../browser/index.js';

export const $ = (id: string): HTMLElement => document.getElementById(id) as HTMLElement;
export const status = $('status');
export const log = $('log');
export const chat = $('chat') as HTMLFormElement;
export const input = $('message') as HTMLInputElement;

export function setStatus(text: string): void {
  status.textContent = text;
}
export function step(text: string): void {
  const item = document.createElement('li');
  item.textContent = text;
  $('steps').append(item);
}
export function say(text: string, kind: 'me' | 'peer' | 'note'): void {
  const item = document.createElement('li');
  item.className = kind;
  item.textContent = text;
  log.append(item);
}

/** Refusals of the page's key (or of its lack of one): the page says how to give one. */
const KEY_REFUSALS = new Set(['key_required', 'unknown_key']);
const KEY_HINT = 'this server takes app keys: open this page with its app key in the address, /demo/?key=KEY&code=…';

/** What the page says when no partner or group could be had: the server's refusal, plainly. */
export function showFailure(error: unknown): void {
  if (error instanceof PairupError && KEY_REFUSALS.has(error.code)) {
    setStatus(`refused (${error.status} ${error.code})`);
    step(`${error.status} ${error.code}: ${error.message}`);
    step(KEY_HINT);
    return;
  }
  const text = error instanceof PairupError && error.code === 'code_used' ? 'code used' : `failed: ${(error as Error).message}`;
  setStatus(text);
  step(error instanceof PairupError ? `${error.code}: ${error.message}` : String(error));
}

/** `?loopback=1`: ICE candidates on 127.0.0.1 and ::1 alone (the browser tests; nothing leaves the machine). */
export const loopbackFilter = (candidate: RTCIceCandidate): boolean => candidate.address === '127.0.0.1' || candidate.address === '::1';

/** Sends each line typed (Enter) with `send`, which says whether it went anywhere. */
export function onLine(send: (text: string) => boolean): void {
  chat.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (text === '' || !send(text)) return;
    say(text, 'me');
    input.value = '';
  });
}
