/**
 * connectPeer (the Node client's WebSocket call) and `pairup signal`, against a real server.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPeer, NoPeerError, PairupError } from '../../src/client/index.js';
import { eventually, startServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(() => server.close());

describe('connectPeer', () => {
  it('matches two clients by code and relays both ways; leaving ends the other’s channel', async () => {
    const waiting = connectPeer({ url: server.origin, code: 'chan-1', ca: server.cert, meta: { n: 1 } });
    await eventually(() => server.app.lobby.waiting === 1, 5000, 'the first waiting');
    const b = await connectPeer({ url: server.origin, code: 'chan-1', ca: server.cert });
    const a = await waiting;
    expect([a.match.matchId, a.match.peer, b.match.peer, a.match.initiator, b.match.initiator, b.match.peerMeta]).toEqual([
      b.match.matchId,
      b.match.self,
      a.match.self,
      true,
      false,
      { n: 1 },
    ]);
    a.send({ offer: 'sdp' });
    a.send('second');
    b.send([1, 2, 3]);
    const atB: unknown[] = [];
    for await (const data of b) {
      atB.push(data);
      if (atB.length === 2) break;
    }
    expect(atB).toEqual([{ offer: 'sdp' }, 'second']);
    const atA: unknown[] = [];
    const reading = (async () => {
      for await (const data of a) atA.push(data);
    })();
    b.close();
    expect(await a.ended).toEqual({ reason: 'peer_left', code: 4002 });
    await reading;
    expect(atA).toEqual([[1, 2, 3]]);
    expect(await b.ended).toEqual({ reason: 'closed', code: 1000 });
  });

  it('fails with the server’s code, and with NoPeerError when nobody comes', async () => {
    const a = connectPeer({ url: server.origin, code: 'chan-used', ca: server.cert });
    const b = await connectPeer({ url: server.origin, code: 'chan-used', ca: server.cert });
    await a;
    const third = await connectPeer({ url: server.origin, code: 'chan-used', ca: server.cert }).catch((e: unknown) => e);
    expect(third).toBeInstanceOf(PairupError);
    expect([(third as PairupError).status, (third as PairupError).code]).toEqual([409, 'code_used']);
    b.close();
    const started = performance.now();
    const alone = await connectPeer({ url: server.origin, pool: 'nobody', ca: server.cert, timeoutMs: 500 }).catch((e: unknown) => e);
    expect(alone).toBeInstanceOf(NoPeerError);
    expect(performance.now() - started).toBeLessThan(2000);
    await eventually(() => server.app.lobby.waiting === 0, 2000, 'the lonely socket gone');
  });
});

describe('pairup signal', () => {
  const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
  let dir: string;
  let cacert: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pairup-signal-'));
    cacert = join(dir, 'ca.pem');
    await writeFile(cacert, server.cert);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  function run(code: string) {
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), CLI, 'signal', server.origin, '--code', code, '--cacert', cacert], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const lines: Record<string, unknown>[] = [];
    let buffered = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const part of parts) lines.push(JSON.parse(part) as Record<string, unknown>);
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
    return { child, lines, exit, stderr: () => stderr };
  }

  it('prints the match, relays stdin lines to the peer and prints what it sends; stdin’s end leaves', async () => {
    const one = run('shell-1');
    await eventually(() => server.app.lobby.waiting === 1, 10_000, 'the first waiting');
    const two = run('shell-1');
    await eventually(() => one.lines.length === 1 && two.lines.length === 1, 10_000, 'both matched');
    expect([one.lines[0]?.type, two.lines[0]?.type, one.lines[0]?.matchId]).toEqual(['matched', 'matched', two.lines[0]?.matchId]);
    one.child.stdin.write('{"candidate":"a"}\nplain words\n');
    await eventually(() => two.lines.length === 3, 5000, 'two signals at the second');
    expect(two.lines.slice(1)).toEqual([
      { type: 'signal', data: { candidate: 'a' } },
      { type: 'signal', data: 'plain words' },
    ]);
    one.child.stdin.end();
    expect(await two.exit).toBe(0);
    expect(await one.exit).toBe(0);
    expect(two.lines.at(-1)).toEqual({ type: 'peer_left' });
    expect([one.stderr(), two.stderr()]).toEqual(['', '']);
  });
});
