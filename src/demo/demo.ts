/**
 * The demo page: joins pairup's WebSocket with the code in the address (`/demo/?code=…`), opens a
 * WebRTC data channel to the partner (pairup's own STUN responder as the ICE server) and chats over
 * it; with `?size=N` it joins a group of N instead and chats over a full mesh (mesh-chat.ts).
 * `?loopback=1` keeps ICE candidates on 127.0.0.1 and ::1 (the browser tests use it, so that
 * nothing leaves the machine). Stable hooks for tests: `#status` reads `open` once the channel is
 * open (`refused (401 key_required)` and the like when the server wants an app key, `?key=…`); a
 * line typed in `#message` and sent with Enter shows up in the partner's `#log`;
 * `window.pairupDemo.connection` is the open RTCPeerConnection (the NAT lab reads its selected pair).
 */
import { connectPeer, openDataChannel, type PeerChannel } from '../browser/index.js';
import { runMesh } from './mesh-chat.js';
import { $, chat, input, loopbackFilter, onLine, say, setStatus, showFailure, status, step } from './page.js';

const params = new URLSearchParams(location.search);
const code = params.get('code');
const loopbackOnly = params.get('loopback') === '1';
// A server with app keys needs one: the demo takes it from its address (`?key=…`), kept in the shared link.
const key = params.get('key') ?? undefined;
// A group's size, as given: the server says what is wrong with one (invalid_size names its range).
const size = params.get('size');

if (code === null || code === '') {
  $('start').hidden = false;
  setStatus('no code');
  const sizeField = $('size') as HTMLInputElement;
  if (size !== null) sizeField.value = size;
  $('make').addEventListener('click', () => {
    const words = ['amber', 'birch', 'coral', 'delta', 'ember', 'fjord', 'grove', 'harbor', 'indigo', 'juniper'];
    const random = (below: number): number => (crypto.getRandomValues(new Uint32Array(1))[0] ?? 0) % below;
    const pick = (): string => words[random(words.length)] ?? 'pair';
    const made = new URLSearchParams({ code: `${pick()}-${pick()}-${random(1000)}` });
    // A pair (2, the field's default) needs no size in its link.
    if (sizeField.value.trim() !== '2') made.set('size', sizeField.value.trim());
    if (key !== undefined) made.set('key', key);
    location.search = `?${made.toString()}`;
  });
} else {
  const link = $('link') as HTMLAnchorElement;
  link.href = location.href;
  link.textContent = location.href;
  $('share').hidden = false;
  if (size === null) void run(code);
  else void runMesh(code, Number(size), key, loopbackOnly);
}

async function run(room: string): Promise<void> {
  setStatus('waiting');
  step(`waiting for a partner with code ${room}`);
  let peer: PeerChannel;
  try {
    // No deadline: the page waits until a partner comes or it is closed (the client joins again
    // each time the server's own wait, MATCH_TIMEOUT_MS, ends).
    peer = await connectPeer({ url: location.origin, code: room, timeoutMs: Infinity, ...(key === undefined ? {} : { key }) });
  } catch (error) {
    showFailure(error);
    return;
  }
  setStatus('matched');
  step(`matched with ${peer.match.peer} (${peer.match.initiator ? 'it makes the offer' : 'this page makes the offer'})`);
  peer.onEnd = (reason) => {
    if (reason === 'peer_left' && status.textContent !== 'open') setStatus('peer left');
  };
  try {
    // ICE servers are the match's: pairup's STUN responder, and its TURN relays when it has them.
    const { channel, connection } = await openDataChannel(peer, {
      onStep: step,
      ...(loopbackOnly ? { filterCandidate: loopbackFilter } : {}),
      onAuthenticated: (opened) => opened.addEventListener('message', (event: MessageEvent) => say(String(event.data), 'peer')),
    });
    (window as Window & { pairupDemo?: { readonly connection: RTCPeerConnection } }).pairupDemo = { connection };
    setStatus('open');
    chat.hidden = false;
    input.focus();
    say('channel open: messages now go straight to your partner', 'note');
    const left = (): void => {
      if (status.textContent === 'peer left') return;
      setStatus('peer left');
      say('peer left', 'note');
      chat.hidden = true;
    };
    channel.addEventListener('close', left);
    connection.addEventListener('connectionstatechange', () => {
      if (connection.connectionState === 'failed' || connection.connectionState === 'closed') left();
    });
    peer.onEnd = (reason) => {
      if (reason === 'peer_left') left();
    };
    onLine((text) => {
      if (channel.readyState !== 'open') return false;
      channel.send(text);
      return true;
    });
  } catch (error) {
    setStatus(`failed: ${(error as Error).message}`);
    peer.close();
  }
}
