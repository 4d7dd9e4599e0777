/**
 * The demo page: joins pairup's WebSocket with the code in the address (`/demo/?code=…`), opens a
 * WebRTC data channel to the partner (pairup's own STUN responder as the ICE server) and chats over
 * it. `?loopback=1` keeps ICE candidates on 127.0.0.1 and ::1 (the browser tests use it, so that
 * nothing leaves the machine). Stable hooks for tests: `#status` reads `open` once the channel is
 * open; a line typed in `#message` and sent with Enter shows up in the partner's `#log`.
 */
import { connectPeer, openDataChannel, PairupError, type PeerChannel } from '../browser/index.js';

const $ = (id: string): HTMLElement => document.getElementById(id) as HTMLElement;
const status = $('status');
const steps = $('steps');
const log = $('log');
const chat = $('chat') as HTMLFormElement;
const input = $('message') as HTMLInputElement;

function setStatus(text: string): void {
  status.textContent = text;
}
function step(text: string): void {
  const item = document.createElement('li');
  item.textContent = text;
  steps.append(item);
}
function say(text: string, kind: 'me' | 'peer' | 'note'): void {
  const item = document.createElement('li');
  item.className = kind;
  item.textContent = text;
  log.append(item);
}

const params = new URLSearchParams(location.search);
const code = params.get('code');
const loopbackOnly = params.get('loopback') === '1';

if (code === null || code === '') {
  $('start').hidden = false;
  setStatus('no code');
  $('make').addEventListener('click', () => {
    const words = ['amber', 'birch', 'coral', 'delta', 'ember', 'fjord', 'grove', 'harbor', 'indigo', 'juniper'];
    const random = (below: number): number => (crypto.getRandomValues(new Uint32Array(1))[0] ?? 0) % below;
    const pick = (): string => words[random(words.length)] ?? 'pair';
    const made = `${pick()}-${pick()}-${random(1000)}`;
    location.search = `?code=${encodeURIComponent(made)}`;
  });
} else {
  const link = $('link') as HTMLAnchorElement;
  link.href = location.href;
  link.textContent = location.href;
  $('share').hidden = false;
  void run(code);
}

async function run(room: string): Promise<void> {
  setStatus('waiting');
  step(`waiting for a partner with code ${room}`);
  let peer: PeerChannel;
  try {
    peer = await connectPeer({ url: location.origin, code: room, timeoutMs: 60_000 });
  } catch (error) {
    const text = error instanceof PairupError && error.code === 'code_used' ? 'code used' : `failed: ${(error as Error).message}`;
    setStatus(text);
    step(error instanceof PairupError ? `${error.code}: ${error.message}` : String(error));
    return;
  }
  setStatus('matched');
  step(`matched with ${peer.match.peer} (${peer.match.initiator ? 'it makes the offer' : 'this page makes the offer'})`);
  peer.onEnd = (reason) => {
    if (reason === 'peer_left' && status.textContent !== 'open') setStatus('peer left');
  };
  const stun = `stun:${location.hostname}:${location.port || '443'}`;
  try {
    const { channel, connection } = await openDataChannel(peer, {
      iceServers: [{ urls: stun }],
      onStep: step,
      ...(loopbackOnly ? { filterCandidate: (candidate: RTCIceCandidate) => candidate.address === '127.0.0.1' || candidate.address === '::1' } : {}),
    });
    setStatus('open');
    chat.hidden = false;
    input.focus();
    say('channel open: messages now go straight to your partner', 'note');
    channel.addEventListener('message', (event: MessageEvent) => say(String(event.data), 'peer'));
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
    chat.addEventListener('submit', (event) => {
      event.preventDefault();
      const text = input.value.trim();
      if (text === '' || channel.readyState !== 'open') return;
      channel.send(text);
      say(text, 'me');
      input.value = '';
    });
  } catch (error) {
    setStatus(`failed: ${(error as Error).message}`);
    peer.close();
  }
}
