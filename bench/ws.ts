/**
 * `npm run bench -- --ws`: pairup's WebSocket transport against a bare `ws` server doing the same
 * (bench/ws-baseline.ts), each on core 0, the load from this process on core 1:
 *
 * - pairings: loops, each opening two sockets (a TLS connection each), joining one pool of the
 *   loop's own, both matched, one leaving, the other told: pairings per second, server CPU per pairing;
 * - relay: pairs already matched, bouncing a signal back and forth: relayed messages per second,
 *   server CPU per message;
 * - memory: sockets waiting, each in a pool of its own, against the same number of HTTP/1.1 requests
 *   waiting in pairup (KiB of the server's resident memory per waiter, each on a fresh server).
 */
import { setMaxListeners } from 'node:events';
import { WebSocket } from 'ws';
import { h1Get } from './client.js';
import { memoryOf, startServer, type RunningServer, type ServerKind } from './servers.js';
import { cpuTimeMs, median, type Placement } from './tools.js';

export interface WsBenchOptions {
  readonly durationS: number;
  readonly rounds: number;
  readonly tls: { certFile: string; keyFile: string };
  readonly ca: string;
  readonly dir: string;
  readonly where: Placement;
  readonly waiters: number;
}

type Message = Record<string, unknown> & { type?: string };

function open(origin: string, ca: string): Promise<{ socket: WebSocket; next: () => Promise<Message> }> {
  const socket = new WebSocket(`${origin.replace('https:', 'wss:')}/ws`, { ca, perMessageDeflate: false });
  const inbox: Message[] = [];
  let wake: (() => void) | undefined;
  socket.on('message', (data) => {
    inbox.push(JSON.parse((data as Buffer).toString('utf8')) as Message);
    wake?.();
  });
  socket.on('close', () => wake?.());
  socket.on('error', () => undefined);
  const next = async (): Promise<Message> => {
    while (inbox.length === 0) {
      if (socket.readyState === socket.CLOSED) throw new Error('closed');
      await new Promise<void>((resolve) => (wake = resolve));
    }
    return inbox.shift() as Message;
  };
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve({ socket, next }));
    socket.once('error', reject);
  });
}

async function until(next: () => Promise<Message>, type: string): Promise<Message> {
  for (;;) {
    const message = await next();
    if (message.type === type) return message;
  }
}

/** Pairings for `seconds`: `loops` at once. */
async function pairings(origin: string, ca: string, seconds: number, loops: number): Promise<number> {
  const end = performance.now() + seconds * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: loops }, async (_, loop) => {
      while (performance.now() < end) {
        const [a, b] = await Promise.all([open(origin, ca), open(origin, ca)]);
        a.socket.send(JSON.stringify({ type: 'join', pool: `ws-${loop}` }));
        await until(a.next, 'queued');
        b.socket.send(JSON.stringify({ type: 'join', pool: `ws-${loop}` }));
        const [ma, mb] = await Promise.all([until(a.next, 'matched'), until(b.next, 'matched')]);
        if (ma.matchId !== mb.matchId || ma.peer !== mb.self) throw new Error('asymmetric match');
        a.socket.send('{"type":"leave"}');
        await until(b.next, 'peer_left');
        a.socket.terminate();
        b.socket.terminate();
        done++;
      }
    }),
  );
  return done;
}

/** Relayed messages for `seconds` over `pairs` matched pairs, each bouncing one signal. */
async function relay(origin: string, ca: string, seconds: number, pairs: number): Promise<number> {
  const matchedPairs = await Promise.all(
    Array.from({ length: pairs }, async (_, i) => {
      const [a, b] = await Promise.all([open(origin, ca), open(origin, ca)]);
      a.socket.send(JSON.stringify({ type: 'join', pool: `relay-${i}` }));
      await until(a.next, 'queued');
      b.socket.send(JSON.stringify({ type: 'join', pool: `relay-${i}` }));
      await Promise.all([until(a.next, 'matched'), until(b.next, 'matched')]);
      return [a, b] as const;
    }),
  );
  const end = performance.now() + seconds * 1000;
  let relayed = 0;
  const payload = JSON.stringify({ type: 'signal', data: { candidate: 'candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host', sdpMid: '0' } });
  await Promise.all(
    matchedPairs.map(async ([a, b]) => {
      while (performance.now() < end) {
        a.socket.send(payload);
        await until(b.next, 'signal');
        b.socket.send(payload);
        await until(a.next, 'signal');
        relayed += 2;
      }
    }),
  );
  for (const [a, b] of matchedPairs) {
    a.socket.terminate();
    b.socket.terminate();
  }
  return relayed;
}

/** Resident KiB per waiting socket: `n` sockets waiting, each in a pool of its own. */
async function memoryPerSocket(server: RunningServer, ca: string, n: number): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 300));
  const idle = memoryOf(server.pid).rss;
  const sockets: WebSocket[] = [];
  for (let first = 0; first < n; first += 200) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(200, n - first) }, async (_, k) => {
        const s = await open(server.origin, ca);
        s.socket.send(JSON.stringify({ type: 'join', pool: `mem-${first + k}` }));
        await until(s.next, 'queued');
        return s.socket;
      }),
    );
    sockets.push(...batch);
  }
  await new Promise((resolve) => setTimeout(resolve, 300));
  const held = memoryOf(server.pid).rss;
  for (const s of sockets) s.terminate();
  return (held - idle) / 1024 / n;
}

/** Resident KiB per waiting HTTP/1.1 request in pairup: `n` requests, each on its own connection. */
async function memoryPerRequest(server: RunningServer, ca: string, n: number): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 300));
  const url = new URL(server.origin);
  const idle = memoryOf(server.pid).rss;
  const controller = new AbortController();
  setMaxListeners(n + 10, controller.signal); // one per waiting request
  const answers: Promise<unknown>[] = [];
  for (let first = 0; first < n; first += 200) {
    const batch: Promise<void>[] = [];
    for (let i = first; i < Math.min(n, first + 200); i++) {
      batch.push(
        new Promise<void>((connected) => {
          answers.push(h1Get(url, `/?pool=mem-${i}`, { ca, agent: false, onConnected: connected, signal: controller.signal }).catch(() => undefined));
        }),
      );
    }
    await Promise.all(batch);
  }
  for (let i = 0; i < 200; i++) {
    const { body } = await h1Get(url, '/healthz', { ca, agent: false });
    if ((JSON.parse(body) as { waiting: number }).waiting >= n) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const held = memoryOf(server.pid).rss;
  controller.abort();
  await Promise.all(answers);
  return (held - idle) / 1024 / n;
}

export async function wsBench(
  options: WsBenchOptions,
): Promise<{ lines: string[]; rows: Record<string, unknown>[]; failed: boolean; ratio: number }> {
  const kinds: ServerKind[] = ['pairup', 'ws-baseline'];
  const figures = new Map<ServerKind, Record<string, number>[]>();
  for (let round = 0; round < options.rounds; round++) {
    for (const kind of round % 2 === 0 ? kinds : [...kinds].reverse()) {
      process.stderr.write(`ws: round ${round + 1}/${options.rounds}: ${kind} ...\n`);
      const server = await startServer(kind, options.tls, options.dir, options.where.server, [], { WS_MAX_MESSAGES_PER_S: '100000' });
      try {
        await pairings(server.origin, options.ca, 1, 20); // warm-up
        let cpu = cpuTimeMs(server.pid);
        const paired = await pairings(server.origin, options.ca, options.durationS, 20);
        const pairCpu = cpuTimeMs(server.pid) - cpu;
        cpu = cpuTimeMs(server.pid);
        const relayed = await relay(server.origin, options.ca, options.durationS, 20);
        const relayCpu = cpuTimeMs(server.pid) - cpu;
        const row: Record<string, number> = {
          'pairings/s': paired / options.durationS,
          'cpu µs/pairing': (pairCpu * 1000) / paired,
          'relayed msgs/s': relayed / options.durationS,
          'cpu µs/msg': (relayCpu * 1000) / relayed,
        };
        (figures.get(kind) ?? figures.set(kind, []).get(kind))?.push(row);
      } finally {
        await server.stop();
      }
      if (round === 0) {
        // Memory on fresh servers: one that has served load keeps the memory it freed, and would
        // seem to need none for new waiters.
        const row = figures.get(kind)?.[0] ?? {};
        const fresh = async (measure: (s: RunningServer) => Promise<number>): Promise<number> => {
          const s = await startServer(kind, options.tls, options.dir, options.where.server);
          try {
            return await measure(s);
          } finally {
            await s.stop();
          }
        };
        row['KiB/waiting socket'] = await fresh((s) => memoryPerSocket(s, options.ca, options.waiters));
        if (kind === 'pairup') row['KiB/waiting request'] = await fresh((s) => memoryPerRequest(s, options.ca, options.waiters));
      }
    }
  }
  const names = ['pairings/s', 'cpu µs/pairing', 'relayed msgs/s', 'cpu µs/msg', 'KiB/waiting socket', 'KiB/waiting request'];
  const combined = Object.fromEntries(
    kinds.map((kind) => [kind, Object.fromEntries(names.map((n) => [n, median((figures.get(kind) ?? []).map((r) => r[n]).filter((v): v is number => v !== undefined))]))]),
  ) as Record<ServerKind, Record<string, number>>;
  const fmt = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? '-' : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));
  const lines = [
    '',
    `ws — 20 loops of pairings (two new sockets each), then 20 matched pairs bouncing a signal, ${options.durationS} s each; ${options.waiters} waiting sockets for memory (first round)`,
    `  ${'metric'.padEnd(22)}${'pairup'.padStart(11)}${'ws'.padStart(11)}${'÷ws'.padStart(11)}`,
  ];
  for (const name of names) {
    const ours = combined.pairup[name];
    const base = combined['ws-baseline'][name];
    lines.push(`  ${name.padEnd(22)}${fmt(ours).padStart(11)}${fmt(base).padStart(11)}${fmt(ours !== undefined && base ? ours / base : Number.NaN).padStart(11)}`);
  }
  const ratio = (combined.pairup['cpu µs/pairing'] ?? Number.NaN) / (combined['ws-baseline']['cpu µs/pairing'] ?? Number.NaN);
  const met = ratio <= 1.3;
  lines.push(`  target: cpu µs/pairing <= 1.3x ws: ${fmt(ratio)}x ${met ? 'met' : 'NOT MET'}`);
  return { lines, rows: [{ workload: 'ws', figures: combined, target: { ratio, met } }], failed: !met, ratio };
}
