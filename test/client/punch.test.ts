/**
 * pairup/client's punch(): real UDP sockets on loopback, with a real server timing the attempt.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { connectPeer, punch, type Match, type PunchMessage } from '../../src/client/index.js';
import { startServer, type TestServer } from '../helpers/server.js';

let server: TestServer | undefined;
const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.close();
  await server?.close();
  server = undefined;
});

async function bound(host = '127.0.0.1'): Promise<Socket> {
  const socket = createSocket('udp4');
  sockets.push(socket);
  await new Promise<void>((resolve) => socket.bind(0, host, resolve));
  return socket;
}

const addressOf = (socket: Socket): string => `${socket.address().address}:${socket.address().port}`;

/** A match as both sides would hold it (one secret, one id), seen from `initiator`'s side. */
function matchFor(secret: string, initiator: boolean): Match {
  return { matchId: 'm-1', secret, initiator } as unknown as Match;
}

function told(strategy: PunchMessage['strategy'], mapping: string, extra: Partial<PunchMessage> = {}): PunchMessage {
  return { type: 'punch', attempt: 1, strategy, peer: { mapping, observed: '127.0.0.1:1' }, rttMs: 0, ms: 3000, ...extra };
}

describe('punch()', () => {
  it('opens an authenticated path between two sockets at the instant a real server times, both ways', async () => {
    server = await startServer();
    const [a, b] = [await bound(), await bound()];
    const options = { url: server.origin, ca: server.cert, code: 'punch-udp', timeoutMs: 10_000 };
    const [peerA, peerB] = await Promise.all([
      connectPeer({ ...options, punch: { mapping: addressOf(a), nat: 'independent' } }),
      connectPeer({ ...options, punch: { mapping: addressOf(b), nat: 'independent' } }),
    ]);
    const [toldA, toldB] = await Promise.all([peerA.nextPunch(), peerB.nextPunch()]);
    expect([toldA.strategy, toldA.peer.mapping, toldB.strategy, toldB.peer.mapping]).toEqual(['timed', addressOf(b), 'timed', addressOf(a)]);
    const [pathA, pathB] = await Promise.all([punch({ match: peerA.match, socket: a, punch: toldA }), punch({ match: peerB.match, socket: b, punch: toldB })]);
    expect([pathA.socket, `${pathA.address}:${pathA.port}`]).toEqual([a, addressOf(b)]);
    expect([pathB.socket, `${pathB.address}:${pathB.port}`]).toEqual([b, addressOf(a)]);
    expect(pathA.ms).toBeLessThan(3000);
    peerA.close();
    peerB.close();
  });

  it('finds the path from one of its own sockets when it sprays; the others are closed', async () => {
    const secret = randomBytes(32).toString('base64url');
    const [hard, easy] = [await bound(), await bound()];
    const spraying = punch({ match: matchFor(secret, true), socket: hard, punch: told('spray', addressOf(easy), { ports: 8 }), maxPorts: 8 });
    // The easy side sends to the hard side's main socket, which does not answer; the sprayed hellos reach it from 8 other ports.
    const answering = punch({ match: matchFor(secret, false), socket: easy, punch: told('timed', addressOf(hard)) });
    const [hardPath, easyPath] = await Promise.all([spraying, answering]);
    sockets.push(hardPath.socket);
    expect(`${hardPath.address}:${hardPath.port}`).toBe(addressOf(easy));
    expect(easyPath.socket).toBe(easy);
    // The path is on whichever of the hard side's own sockets answered first; its main socket is untouched.
    expect(hardPath.socket).not.toBe(hard);
    expect(easyPath.port).toBe(hardPath.socket.address().port);
    expect(hard.listenerCount('message')).toBe(0);
  });

  it('sends a probe attempt only to its partner’s address, no more probes than its bound, and gives up after the attempt’s time', async () => {
    const socket = await bound();
    const sent: { port: number; host: string }[] = [];
    const send = socket.send.bind(socket) as (...args: unknown[]) => void;
    (socket as unknown as { send: (...args: unknown[]) => void }).send = (datagram: unknown, port: unknown, host: unknown, callback: unknown) => {
      sent.push({ port: port as number, host: host as string });
      send(datagram, port, host, callback);
    };
    const started = performance.now();
    const attempt = punch({
      match: matchFor(randomBytes(32).toString('base64url'), false),
      socket,
      punch: { ...told('probe', '127.0.0.3:40000', { probes: 5000, probesPerS: 100_000, ms: 800 }), peer: { mapping: '127.0.0.3:40000', observed: '127.0.0.3:5000' } },
      maxProbes: 30,
    });
    await expect(attempt).rejects.toMatchObject({ code: 'punch_failed', message: 'no authenticated datagram both ways with the partner within 800 ms (probe, attempt 1)' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(790);
    expect(new Set(sent.map((d) => d.host))).toEqual(new Set(['127.0.0.3']));
    const toMapping = sent.filter((d) => d.port === 40000).length;
    // 30 probes to random ports (one may land on 40000 by chance), the rest timed hellos to the mapping.
    expect(sent.length - toMapping).toBeLessThanOrEqual(30);
    expect(sent.length - toMapping).toBeGreaterThanOrEqual(29);
    expect(toMapping).toBeGreaterThanOrEqual(4);
  });

  it('ignores datagrams not sealed with the match secret, or sent in its own role', async () => {
    const secret = randomBytes(32).toString('base64url');
    const [a, b, stranger] = [await bound(), await bound(), await bound()];
    const seal = (key: Buffer, text: string) => Buffer.concat([Buffer.from(text), createHmac('sha256', key).update(text).digest()]);
    const noise = setInterval(() => {
      stranger.send(seal(randomBytes(32), 'pairup-punch hello m-1 r'), a.address().port, '127.0.0.1');
      stranger.send(seal(Buffer.from(secret, 'base64url'), 'pairup-punch hello m-1 i'), a.address().port, '127.0.0.1');
      stranger.send(Buffer.from('garbage'), a.address().port, '127.0.0.1');
    }, 5);
    try {
      const [pathA] = await Promise.all([
        punch({ match: matchFor(secret, true), socket: a, punch: told('timed', addressOf(b)) }),
        punch({ match: matchFor(secret, false), socket: b, punch: told('timed', addressOf(a)) }),
      ]);
      expect(`${pathA.address}:${pathA.port}`).toBe(addressOf(b));
    } finally {
      clearInterval(noise);
    }
  });

  it('takes no path from a hello replayed from another address, and answers a flood of them at most every 50 ms', async () => {
    const secret = randomBytes(32).toString('base64url');
    const [a, b, replayer] = [await bound(), await bound(), await bound()];
    // A's hellos as A sends them, caught before they reach B (A's first attempt, aimed at the replayer).
    const caught: Buffer[] = [];
    replayer.on('message', (datagram) => caught.push(datagram));
    await punch({ match: matchFor(secret, true), socket: a, punch: told('timed', addressOf(replayer), { ms: 300 }) }).catch(() => undefined);
    expect(caught.length).toBeGreaterThan(0);
    const answers: Buffer[] = [];
    replayer.removeAllListeners('message');
    replayer.on('message', (datagram) => answers.push(datagram));
    const bPath = punch({ match: matchFor(secret, false), socket: b, punch: told('timed', addressOf(a)) });
    for (let i = 0; i < 200; i++) replayer.send(caught[0] as Buffer, b.address().port, '127.0.0.1');
    await new Promise((resolve) => setTimeout(resolve, 300));
    // 200 replays: one ack (then none for 50 ms), and one hello of B's, not 400 datagrams.
    expect(answers.length).toBeLessThanOrEqual(8);
    const aPath = punch({ match: matchFor(secret, true), socket: a, punch: told('timed', addressOf(b)) });
    const [pathA, pathB] = await Promise.all([aPath, bPath]);
    expect(`${pathB.address}:${pathB.port}`).toBe(addressOf(a));
    expect(`${pathA.address}:${pathA.port}`).toBe(addressOf(b));
  });

  it('sends nothing to a mapping that is not at the partner’s address, and rejects what is not a punch', async () => {
    const socket = await bound();
    const sent: unknown[] = [];
    (socket as unknown as { send: (...args: unknown[]) => void }).send = (...args: unknown[]) => sent.push(args);
    const match = matchFor('c2VjcmV0', true);
    await expect(punch({ match, socket, punch: { ...told('timed', '198.51.100.7:53'), peer: { mapping: '198.51.100.7:53', observed: '127.0.0.1:4000' } } })).rejects.toMatchObject({
      code: 'punch_failed',
      message: 'the partner’s mapping 198.51.100.7:53 is not at its address 127.0.0.1:4000: nothing is sent there'.replace('’', "'"),
    });
    await expect(punch({ match, socket, punch: { type: 'punch', attempt: 1, strategy: 'scan' } as unknown as PunchMessage })).rejects.toMatchObject({ code: 'punch_failed', message: 'not a punch this client knows (strategy "scan")' });
    const aborted = AbortSignal.abort(new Error('stop'));
    await expect(punch({ match, socket, punch: told('timed', '127.0.0.1:9'), signal: aborted })).rejects.toThrow('stop');
    expect(sent).toEqual([]);
    expect(socket.listenerCount('message')).toBe(0);
  });

  it('rejects at once for relay: no direct attempt', async () => {
    const socket = await bound();
    await expect(punch({ match: matchFor('c2VjcmV0', true), socket, punch: told('relay', '127.0.0.1:9') })).rejects.toMatchObject({ code: 'punch_failed' });
    expect(socket.listenerCount('message')).toBe(0);
  });
});
