/**
 * `punch()`: opens a direct UDP path to the partner at the instant the server said (a `punch` message
 * from `PeerChannel.nextPunch()`), in the way it said (src/protocol/punch.ts):
 *
 *   timed   sends to the partner's mapping at once, then at random 10–200 ms intervals;
 *   spray   sends from `ports` sockets of its own instead (behind a mapping per destination, each
 *           gets a public port of its own: one of them is what the partner's probes find);
 *   probe   sends to random ports of the partner's address, `probesPerS` a second, `probes` at most.
 *
 * Every datagram is authenticated with the match secret (HMAC-SHA256): `pairup-punch KIND MATCHID
 * ROLE NONCE` and its MAC, KIND `hello` or `ack`, ROLE the sender's (`i` the initiator, `r` the
 * other), NONCE the sender's own for this call in a hello, and the nonce of the hello it answers in
 * an ack. A path is verified when, from one address, the partner's hello came in and an ack of one
 * of this call's hellos: a hello replayed from elsewhere (or an old ack) does not make a path. Hellos
 * are still acknowledged for a second after that (our last ack may be lost). Datagrams go only to
 * the partner's observed address (its mapping must be there), and answers are bounded: at most
 * {@link MAX_SOURCES} addresses a socket, each answered at most every {@link ANSWER_EVERY_MS} ms.
 *
 *   const socket = dgram.createSocket('udp4'); socket.bind(0);
 *   const nat = await discoverNat(socket, { host, port });
 *   const peer = await connectPeer({ url, code, punch: nat });
 *   const path = await punch({ match: peer.match, socket, punch: await peer.nextPunch() });
 *   path.socket.send('hi', path.port, path.address);
 */
import { createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { mappedWhereSeen, PROBE_COUNT, PROBE_PER_S, PUNCH_MS, PUNCH_STRATEGIES, SPRAY_PORTS, splitAddress, type Match, type PunchMessage } from '../protocol/index.js';
import { PairupError } from './errors.js';

/** Hellos are acknowledged this long after the path is verified. */
const LINGER_MS = 1000;
/** A spray side's sockets send again this often: their mappings stay open while the partner probes. */
const SPRAY_AGAIN_MS = 1000;
/** Probes go to ports in this range (where NATs map). */
const LOWEST_PORT = 1024;
/** Addresses answered per socket, and how often each at most: what replayed hellos can make it send. */
const MAX_SOURCES = 1024;
const ANSWER_EVERY_MS = 50;

export interface PunchOptions {
  readonly match: Match;
  /** A bound UDP socket: the one whose mapping the join reported. It is not closed. */
  readonly socket: Socket;
  /** The server's `punch` for this attempt. */
  readonly punch: PunchMessage;
  readonly signal?: AbortSignal;
  /**
   * Bounds on what this side sends, whatever the server says (it may say less): sockets of a spray,
   * probes and probes a second, how long. Defaults: the protocol's own figures.
   */
  readonly maxPorts?: number;
  readonly maxProbes?: number;
  readonly maxProbesPerS?: number;
  readonly maxMs?: number;
}

export interface PunchedPath {
  /** The socket the path is on: `options.socket`, or (spray) one of its own, which the caller now owns. */
  readonly socket: Socket;
  /** The partner's end of the path. */
  readonly address: string;
  readonly port: number;
  /** From the call to the path verified. */
  readonly ms: number;
}

/** Opens the path, or rejects (`PairupError` `punch_failed`) after the attempt's time or at once for `relay`. */
export function punch(options: PunchOptions): Promise<PunchedPath> {
  const { match, punch: told } = options;
  const started = performance.now();
  const failed = (why: string): Promise<never> => Promise.reject(new PairupError(0, 'punch_failed', why));
  if (options.signal?.aborted === true) return Promise.reject((options.signal.reason as Error | undefined) ?? new Error('aborted'));
  const peer = (told as Partial<PunchMessage> | undefined)?.peer as Partial<PunchMessage['peer']> | undefined;
  if (!PUNCH_STRATEGIES.includes(told.strategy) || typeof peer?.observed !== 'string' || !(peer.mapping === undefined || typeof peer.mapping === 'string')) {
    return failed(`not a punch this client knows (strategy ${JSON.stringify(told.strategy)})`);
  }
  const target = peer.mapping === undefined ? undefined : splitAddress(peer.mapping);
  if (told.strategy === 'relay' || target === undefined) {
    return failed('no direct attempt for this pair (both mappings depend on the destination, or a partner reported none): use a relay');
  }
  if (!mappedWhereSeen(peer.mapping, peer.observed)) return failed(`the partner's mapping ${String(peer.mapping)} is not at its address ${peer.observed}: nothing is sent there`);
  const ms = Math.max(0, Math.min(Number.isFinite(told.ms) ? told.ms : 0, options.maxMs ?? PUNCH_MS));
  const family = target.host.includes(':') ? 'udp6' : 'udp4';
  const key = Buffer.from(match.secret, 'base64url');
  const role = match.initiator ? 'i' : 'r';
  const partnerRole = match.initiator ? 'r' : 'i';
  const nonce = randomBytes(8).toString('hex');
  const hello = seal(key, `pairup-punch hello ${match.matchId} ${role} ${nonce}`);

  return new Promise<PunchedPath>((resolve, reject) => {
    const timers: NodeJS.Timeout[] = [];
    const own: Socket[] = [];
    /** Per socket: the partner's hellos and acks by the address they came from, and where a hello was first heard. */
    const heard = new Map<Socket, { readonly sources: Map<string, Source>; first?: RemoteInfo }>();
    let done = false;
    const listeners = new Map<Socket, (datagram: Buffer, from: RemoteInfo) => void>();

    const send = (socket: Socket, datagram: Buffer, port: number, host: string): void => {
      if (!done) socket.send(datagram, port, host, () => undefined);
    };
    const finish = (outcome: { path: PunchedPath } | { error: Error }): void => {
      if (done) return;
      done = true;
      for (const timer of timers) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      const kept = 'path' in outcome ? outcome.path.socket : undefined;
      for (const [socket, listener] of listeners) if (socket !== kept) socket.off('message', listener);
      for (const socket of own) if (socket !== kept) socket.close();
      if ('path' in outcome) {
        // Our last ack may be lost: the partner's hellos on this path are answered a while longer.
        const listener = listeners.get(outcome.path.socket);
        const linger = setTimeout(() => listener !== undefined && outcome.path.socket.off('message', listener), LINGER_MS);
        linger.unref();
        resolve(outcome.path);
      } else reject(outcome.error);
    };
    const onAbort = (): void => finish({ error: (options.signal?.reason as Error | undefined) ?? new Error('aborted') });
    options.signal?.addEventListener('abort', onAbort, { once: true });

    const listen = (socket: Socket): void => {
      const state: { readonly sources: Map<string, Source>; first?: RemoteInfo } = { sources: new Map() };
      heard.set(socket, state);
      const listener = (datagram: Buffer, from: RemoteInfo): void => {
        const [prefix, kind, matchId, sender, theirs] = open(key, datagram)?.split(' ') ?? [];
        if (prefix !== 'pairup-punch' || matchId !== match.matchId || sender !== partnerRole || theirs === undefined) return;
        const at = `${from.address}|${from.port}`;
        let source = state.sources.get(at);
        if (source === undefined) {
          if (state.sources.size >= MAX_SOURCES) return;
          state.sources.set(at, (source = { hello: false, acked: false, helloSent: false, answeredAt: -Infinity }));
        }
        if (kind === 'hello') {
          source.hello = true;
          state.first ??= from;
          const now = performance.now();
          if (now - source.answeredAt >= ANSWER_EVERY_MS) {
            source.answeredAt = now;
            socket.send(seal(key, `pairup-punch ack ${match.matchId} ${role} ${theirs}`), from.port, from.address, () => undefined);
          }
          // Our hello to where theirs came from (once): behind a mapping per destination, that is its real port.
          if (!source.helloSent && !done) {
            source.helloSent = true;
            socket.send(hello, from.port, from.address, () => undefined);
          }
        } else if (kind === 'ack' && theirs === nonce) source.acked = true;
        if (!done && source.hello && source.acked) {
          finish({ path: { socket, address: from.address, port: from.port, ms: performance.now() - started } });
        }
      };
      listeners.set(socket, listener);
      socket.on('message', listener);
    };
    // Timed: to the partner's mapping now, then at random 10–200 ms intervals (a probe does it too:
    // a partner without a NAT answers from wherever it is).
    const timed = (): void => {
      if (done) return;
      const first = heard.get(options.socket)?.first;
      send(options.socket, hello, first?.port ?? target.port, first?.address ?? target.host);
      timers.push(setTimeout(timed, randomInt(10, 201)));
    };
    if (told.strategy !== 'spray') {
      listen(options.socket);
      timed();
    }

    if (told.strategy === 'spray') {
      const ports = Math.max(0, Math.min(told.ports ?? 0, options.maxPorts ?? SPRAY_PORTS));
      for (let i = 0; i < ports; i++) {
        const socket = createSocket(family);
        own.push(socket);
        socket.on('error', () => undefined);
        listen(socket);
        socket.bind(0, () => {
          send(socket, hello, target.port, target.host);
        });
      }
      const again = (): void => {
        if (done) return;
        for (const socket of own) if (heard.get(socket)?.first === undefined) send(socket, hello, target.port, target.host);
        timers.push(setTimeout(again, SPRAY_AGAIN_MS));
      };
      timers.push(setTimeout(again, SPRAY_AGAIN_MS));
    }

    if (told.strategy === 'probe') {
      const probes = Math.max(0, Math.min(told.probes ?? 0, options.maxProbes ?? PROBE_COUNT));
      const perS = Math.max(1, Math.min(told.probesPerS ?? 1, options.maxProbesPerS ?? PROBE_PER_S));
      let sent = 0;
      // In bursts every 20 ms (timers are not finer than that under load), never ahead of the rate.
      const burst = (): void => {
        if (done) return;
        const due = Math.min(probes, Math.floor(((performance.now() - started) / 1000) * perS) + 1);
        for (; sent < due; sent++) send(options.socket, hello, randomInt(LOWEST_PORT, 65_536), target.host);
        if (sent < probes) timers.push(setTimeout(burst, 20));
      };
      burst();
    }

    timers.push(
      setTimeout(() => finish({ error: new PairupError(0, 'punch_failed', `no authenticated datagram both ways with the partner within ${ms} ms (${told.strategy}, attempt ${told.attempt})`) }), ms),
    );
  });
}

/** What one address sent on one socket: a hello, an ack of ours; when it was last answered. */
interface Source {
  hello: boolean;
  acked: boolean;
  helloSent: boolean;
  answeredAt: number;
}

/** `text` and its HMAC-SHA256 under the match secret. */
function seal(key: Buffer, text: string): Buffer {
  return Buffer.concat([Buffer.from(text), createHmac('sha256', key).update(text).digest()]);
}

/** The text of a datagram whose HMAC is right, or undefined. */
function open(key: Buffer, datagram: Buffer): string | undefined {
  if (datagram.length <= 32 || datagram.length > 512) return undefined;
  const text = datagram.subarray(0, -32);
  const expected = createHmac('sha256', key).update(text).digest();
  return timingSafeEqual(expected, datagram.subarray(-32)) ? text.toString() : undefined;
}
