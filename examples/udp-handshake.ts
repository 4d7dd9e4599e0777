/**
 * Two programs that have never met open a direct, authenticated UDP path through pairup:
 *
 *   1. each binds a UDP socket and learns its public mapping, and whether that mapping depends on the
 *      destination, from pairup's STUN responder (discoverNat: its second port, STUN_ALT_PORT);
 *   2. each waits for the other over pairup's WebSocket with the same rendezvous code, saying it will
 *      punch (its mapping and NAT);
 *   3. pairup tells both when to send, and how (a `punch`: timed so both hear it together; for one
 *      endpoint-dependent NAT, one side sends from many ports and the other probes); each sends the
 *      other datagrams authenticated with the match's secret (punch(), HMAC-SHA256) and prints
 *      `connected to <peer>` once it has verified the partner's; up to 3 attempts;
 *   4. each tells pairup how it went (reportOutcome: direct, or failed), for the operator's dashboard.
 *
 * Run it twice, in two terminals (against `npm start`, which serves STUN on the HTTPS port number):
 *
 *   npx tsx examples/udp-handshake.ts https://localhost:3030 --code quiet-heron-63 --cacert certs/dev-cert.pem
 *
 * `--untimed` does without pairup's timing, for comparison: the partner's mapping comes in the match's
 * meta (findPeer over HTTP), and each side starts sending as soon as its answer arrives.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectPeer, discoverNat, findPeer, punch, reportOutcome, type Match, type PeerChannel } from '../src/client/index.js';

const RESEND_MS = 200;
const GIVE_UP_MS = 10_000;
/** After both directions are verified, hellos are still acknowledged this long: our last ack may be lost. */
const LINGER_MS = 1000;

/** `kind matchId from` plus its HMAC under the match secret: what each side sends the other. */
function seal(key: Buffer, text: string): Buffer {
  return Buffer.concat([Buffer.from(text), createHmac('sha256', key).update(text).digest()]);
}

/** The text of a datagram whose HMAC is right, or undefined. */
function open(key: Buffer, datagram: Buffer): string | undefined {
  if (datagram.length <= 32) return undefined;
  const text = datagram.subarray(0, -32);
  const expected = createHmac('sha256', key).update(text).digest();
  return timingSafeEqual(expected, datagram.subarray(-32)) ? text.toString() : undefined;
}

/**
 * Says hello to the partner until it acknowledges, and acknowledges the partner's hello. Datagrams go
 * to the mapping the partner announced until one of its authenticated hellos comes from elsewhere:
 * behind a NAT that maps each destination apart (endpoint-dependent), its datagrams to us leave from
 * another port than the one it learned from STUN, and that port is where it can be answered.
 */
function handshake(socket: Socket, match: Match, self: string, peer: string): Promise<string> {
  const key = Buffer.from(match.secret, 'base64url');
  let target = { host: peer.slice(0, peer.lastIndexOf(':')), port: Number(peer.slice(peer.lastIndexOf(':') + 1)) };
  const send = (kind: 'hello' | 'ack'): void => socket.send(seal(key, `${kind} ${match.matchId} ${self}`), target.port, target.host);
  return new Promise((resolve, reject) => {
    let verified: string | undefined;
    let acknowledged = false;
    let done = false;
    const onMessage = (datagram: Buffer, from: RemoteInfo): void => {
      const text = open(key, datagram);
      const [kind, matchId, sender] = text?.split(' ') ?? [];
      if (matchId !== match.matchId || sender !== peer) return; // not from our partner: ignored
      if (kind === 'hello') {
        if (verified === undefined) {
          verified = `${from.address}:${from.port}`;
          target = { host: from.address, port: from.port };
          process.stdout.write(`connected to ${verified}\n`);
        }
        send('ack');
      } else if (kind === 'ack') {
        acknowledged = true;
      }
      if (verified !== undefined && acknowledged && !done) {
        done = true;
        clearInterval(resend);
        clearTimeout(fail);
        setTimeout(() => finish(() => resolve(verified as string)), LINGER_MS);
      }
    };
    const resend = setInterval(() => send('hello'), RESEND_MS);
    const fail = setTimeout(() => finish(() => reject(new Error(`no authenticated datagram from ${peer}`))), GIVE_UP_MS);
    const finish = (then: () => void): void => {
      clearInterval(resend);
      clearTimeout(fail);
      socket.off('message', onMessage);
      then();
    };
    socket.on('message', onMessage);
    send('hello');
  });
}

type Report = (outcome: Parameters<typeof reportOutcome>[2]) => Promise<void>;
type Server = { readonly url: string; readonly ca?: string };

/** pairup times the attempt; punch() sends; up to 3 attempts, each asked for afresh. */
async function timedPunch(server: Server, code: string, socket: Socket, stun: { host: string; port: number }): Promise<void> {
  const nat = await discoverNat(socket, stun);
  process.stdout.write(`udp mapping ${nat.mapping} (nat ${nat.nat})\n`);
  const channel: PeerChannel = await connectPeer({ ...server, code, punch: { mapping: nat.mapping, nat: nat.nat } });
  const { match } = channel;
  const matchedAt = performance.now();
  const report = reporter(server, match);
  process.stdout.write(`matched with ${match.peer}\n`);
  try {
    for (let attempt = 1; ; attempt++) {
      const told = await channel.nextPunch();
      process.stdout.write(`punch attempt ${told.attempt}: ${told.strategy}, partner mapping ${told.peer.mapping ?? 'none'}\n`);
      try {
        const path = await punch({ match, socket, punch: told });
        process.stdout.write(`connected to ${path.address}:${path.port}\n`);
        process.stdout.write(`punched on attempt ${told.attempt} (${told.strategy}) in ${Math.round(path.ms)} ms\n`);
        await report({ via: 'direct', ms: performance.now() - matchedAt });
        // The partner may still be waiting for our last ack: punch() answers it for a second.
        await sleep(LINGER_MS);
        if (path.socket !== socket) path.socket.close();
        return;
      } catch (error) {
        // Three attempts at most, whatever the server says.
        if (told.strategy === 'relay' || attempt >= 3) throw error;
        process.stdout.write(`attempt ${told.attempt} failed: ${error instanceof Error ? error.message : String(error)}\n`);
        channel.punchAgain();
      }
    }
  } catch (error) {
    await report({ via: 'failed' });
    throw error;
  } finally {
    channel.close();
  }
}

/** Without pairup's timing: the partner's mapping from its meta, hellos from the moment of the answer. */
async function untimedPunch(server: Server, code: string, socket: Socket, stun: { host: string; port: number }): Promise<void> {
  const self = (await discoverNat(socket, stun)).mapping;
  process.stdout.write(`udp mapping ${self}\n`);
  const match = await findPeer({ ...server, code, meta: { udp: self } });
  const matchedAt = performance.now();
  const report = reporter(server, match);
  const peer = match.peerMeta?.udp;
  if (typeof peer !== 'string') {
    await report({ via: 'failed' });
    throw new Error('the partner shared no UDP address');
  }
  process.stdout.write(`matched with ${match.peer}, its udp mapping ${peer}\n`);
  try {
    await handshake(socket, match, self, peer);
  } catch (error) {
    await report({ via: 'failed' });
    throw error;
  }
  await report({ via: 'direct', ms: performance.now() - matchedAt });
}

/** A report that cannot be sent is only a count missing from the dashboard: said, not fatal. */
function reporter(server: Server, match: Match): Report {
  return (outcome) =>
    reportOutcome(server, match, outcome).catch((error: unknown) => {
      process.stderr.write(`udp-handshake: outcome not reported: ${error instanceof Error ? error.message : String(error)}\n`);
    });
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { code: { type: 'string' }, cacert: { type: 'string' }, 'stun-port': { type: 'string' }, untimed: { type: 'boolean' } },
  });
  const [url] = positionals;
  if (url === undefined || values.code === undefined) {
    throw new Error('usage: udp-handshake URL --code CODE [--cacert FILE] [--stun-port PORT] [--untimed]');
  }
  const address = new URL(url);
  const stun = {
    host: (await lookup(address.hostname.replace(/^\[|\]$/g, ''), { family: 4 })).address,
    port: Number(values['stun-port'] ?? (address.port || '443')),
  };
  const ca = values.cacert === undefined ? undefined : await readFile(values.cacert, 'utf8');
  const server = { url, ...(ca === undefined ? {} : { ca }) };
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, resolve));
  try {
    await (values.untimed === true ? untimedPunch : timedPunch)(server, values.code, socket, stun);
  } finally {
    socket.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`udp-handshake: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
