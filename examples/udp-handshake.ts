/**
 * Two programs that have never met open a direct, authenticated UDP path through pairup:
 *
 *   1. each binds a UDP socket and learns its public mapping from pairup's STUN responder;
 *   2. each calls findPeer() with the same rendezvous code, sharing that mapping as `meta`;
 *   3. each sends the other a datagram authenticated with the match's secret (HMAC-SHA256), and
 *      prints `connected to <peer>` once it has verified the partner's.
 *
 * Run it twice, in two terminals (against `npm start`, which serves STUN on the HTTPS port number):
 *
 *   npx tsx examples/udp-handshake.ts https://localhost:3030 --code quiet-heron-63 --cacert certs/dev-cert.pem
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { findPeer, type Match } from '../src/client/index.js';

const RESEND_MS = 200;
const GIVE_UP_MS = 10_000;
/** After both directions are verified, hellos are still acknowledged this long: our last ack may be lost. */
const LINGER_MS = 1000;

/** Asks the STUN responder at host:port for this socket's public address (RFC 8489 Binding). */
async function stunMapping(socket: Socket, host: string, port: number): Promise<string> {
  const transaction = randomBytes(12);
  const request = Buffer.alloc(20);
  request.writeUInt16BE(0x0001, 0); // Binding request, no attributes
  request.writeUInt32BE(0x2112a442, 4);
  transaction.copy(request, 8);
  return new Promise((resolve, reject) => {
    const onMessage = (message: Buffer): void => {
      if (message.length < 20 || message.readUInt16BE(0) !== 0x0101 || !message.subarray(8, 20).equals(transaction)) return;
      for (let at = 20; at + 4 <= message.length; at += 4 + Math.ceil(message.readUInt16BE(at + 2) / 4) * 4) {
        if (message.readUInt16BE(at) !== 0x0020 || message[at + 5] !== 0x01) continue; // XOR-MAPPED-ADDRESS, IPv4
        const mappedPort = message.readUInt16BE(at + 6) ^ 0x2112;
        const ip = [0, 1, 2, 3].map((i) => (message[at + 8 + i] ?? 0) ^ (message[4 + i] ?? 0)).join('.');
        done();
        return resolve(`${ip}:${mappedPort}`);
      }
    };
    // UDP may lose the request: send it again until an answer comes.
    const resend = setInterval(() => socket.send(request, port, host), 500);
    const fail = setTimeout(() => {
      done();
      reject(new Error(`no STUN answer from ${host}:${port}`));
    }, 5000);
    const done = (): void => {
      clearInterval(resend);
      clearTimeout(fail);
      socket.off('message', onMessage);
    };
    socket.on('message', onMessage);
    socket.send(request, port, host);
  });
}

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

/** Says hello to the partner until it acknowledges, and acknowledges the partner's hello. */
function handshake(socket: Socket, match: Match, self: string, peer: string): Promise<string> {
  const key = Buffer.from(match.secret, 'base64url');
  const [peerHost, peerPort] = [peer.slice(0, peer.lastIndexOf(':')), peer.slice(peer.lastIndexOf(':') + 1)];
  const send = (kind: 'hello' | 'ack'): void => socket.send(seal(key, `${kind} ${match.matchId} ${self}`), Number(peerPort), peerHost);
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

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { code: { type: 'string' }, cacert: { type: 'string' }, 'stun-port': { type: 'string' } },
  });
  const [url] = positionals;
  if (url === undefined || values.code === undefined) {
    throw new Error('usage: udp-handshake URL --code CODE [--cacert FILE] [--stun-port PORT]');
  }
  const server = new URL(url);
  const stunHost = (await lookup(server.hostname.replace(/^\[|\]$/g, ''), { family: 4 })).address;
  const stunPort = Number(values['stun-port'] ?? (server.port || '443'));

  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, resolve));
  try {
    const self = await stunMapping(socket, stunHost, stunPort);
    process.stdout.write(`udp mapping ${self}\n`);
    const ca = values.cacert === undefined ? undefined : await readFile(values.cacert, 'utf8');
    const match = await findPeer({ url, code: values.code, meta: { udp: self }, ...(ca === undefined ? {} : { ca }) });
    const peer = match.peerMeta?.udp;
    if (typeof peer !== 'string') throw new Error('the partner shared no UDP address');
    process.stdout.write(`matched with ${match.peer}, its udp mapping ${peer}\n`);
    await handshake(socket, match, self, peer);
  } finally {
    socket.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`udp-handshake: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
