/**
 * `openMesh()` of pairup/browser in Chromium, loaded from pairup's /client/pairup.js by a page:
 * three meshes of one page form a group of three (each its own WebSocket), send to one and to all,
 * and see a member that closes leave; the server's refusals reject with PairupError; an abort
 * rejects with its reason; a group of two (a pair) meets a pair's connectPeer + openDataChannel.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { Agent, fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../helpers/chromium.js';
import { connectionsCounted, freePort, spawnServer, type ServerProcess } from '../helpers/process.js';
import { testCertificate } from '../helpers/server.js';

let browser: Browser | undefined;
let server: ServerProcess | undefined;
let origin: string;
let dir: string | undefined;
let p: Page;
let cert: string;
let adminPort: number;

beforeAll(async () => {
  const own = await mkdtemp(join(tmpdir(), 'pairup-mesh-client-'));
  dir = own;
  const pem = await testCertificate();
  cert = pem.cert;
  await writeFile(join(own, 'cert.pem'), pem.cert);
  await writeFile(join(own, 'key.pem'), pem.key);
  adminPort = await freePort();
  const running = spawnServer({ HOST: '127.0.0.1', PORT: '0', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem', MAX_WAITING_PER_IP: '0', ADMIN_PORT: String(adminPort) }, own);
  server = running;
  origin = `https://127.0.0.1:${await running.port}`;
  browser = await launchChromium();
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  p = await context.newPage();
  // A page of pairup's origin with no code: it waits for nothing.
  await p.goto(`${origin}/demo/`);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  if (server !== undefined && server.child.exitCode === null) {
    server.child.kill('SIGTERM');
    await server.exit;
  }
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** Page code as text (the test runner would rewrite a function's import() for Node): the client, and loopback candidates alone. */
const PRELUDE = `
  const client = await import(location.origin + '/client/pairup.js');
  const loopback = (candidate) => candidate.address === '127.0.0.1' || candidate.address === '::1';
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const until = async (test) => { for (let i = 0; i < 200 && !test(); i++) await sleep(50); return test(); };
`;

describe('openMesh from a page', () => {
  it('forms a group of three, opens a channel to each member (each member reporting each link), sends to one and to all, and sees one that closes leave', async () => {
    const before = await connectionsCounted(adminPort);
    const result = await p.evaluate<Record<string, unknown>>(`(async () => {
      ${PRELUDE}
      const code = 'mesh-client-' + Date.now();
      const names = ['ann', 'bob', 'cy'];
      const annAborts = new AbortController();
      const opened = [];
      const meshes = await Promise.all(names.map((name) => client.openMesh(location.origin, {
        code, size: 3, meta: { name }, filterCandidate: loopback, timeoutMs: 20000, ...(name === 'ann' ? { signal: annAborts.signal } : {}),
        // From the group's forming: each channel as it opens.
        onMatched: (mesh) => mesh.on('open', (member) => opened.push(name + ' to ' + member.meta.name)),
      })));
      const [ann, bob, cy] = meshes;
      const heard = new Map(meshes.map((mesh) => [mesh, []]));
      const left = new Map(meshes.map((mesh) => [mesh, []]));
      for (const mesh of meshes) {
        mesh.on('message', (member, data) => heard.get(mesh).push(member.meta.name + ': ' + data));
        mesh.on('leave', (member, reason) => left.get(mesh).push(member.meta.name + ' ' + reason));
      }
      const shape = meshes.map((mesh) => ({
        size: mesh.size,
        members: [...mesh.members.values()].map((m) => [m.index, m.meta.name, m.state, m.channel.readyState, m.via]),
      }));
      const indexes = meshes.map((mesh) => mesh.self).sort();
      const sentAll = ann.sendAll('hello all');
      const sentOne = bob.send(cy.self, 'just to cy');
      const toSelf = bob.send(bob.self, 'to myself?');
      await until(() => heard.get(bob).length === 1 && heard.get(cy).length === 2);
      cy.close();
      await until(() => left.get(ann).length === 1 && left.get(bob).length === 1);
      const afterLeave = { toGone: ann.send(cy.self, 'gone?'), toBob: ann.sendAll('just us'), goneState: ann.members.get(cy.self).state };
      await until(() => heard.get(bob).length === 2);
      // An abort after it resolved closes the mesh: bob sees ann leave.
      annAborts.abort();
      await until(() => left.get(bob).length === 2);
      const bobAlone = { states: [...bob.members.values()].map((m) => m.state), sent: bob.sendAll('anyone?') };
      bob.close();
      return { shape, indexes, opened: opened.sort(), sentAll, sentOne, toSelf, afterLeave, bobAlone, heard: meshes.map((mesh) => heard.get(mesh).sort()), left: meshes.map((mesh) => left.get(mesh)) };
    })()`);
    const members = (self: string[]) => ['ann', 'bob', 'cy'].filter((name) => !self.includes(name));
    expect(result.indexes).toEqual([0, 1, 2]);
    expect(result.opened).toEqual(['ann to bob', 'ann to cy', 'bob to ann', 'bob to cy', 'cy to ann', 'cy to bob']);
    const shape = result.shape as { size: number; members: [number, string, string, string, string][] }[];
    shape.forEach((mesh, n) => {
      expect(mesh.size).toBe(3);
      // The three join at once: which of the others got the lower index is theirs to race for.
      const byName = [...mesh.members].sort(([, x], [, y]) => x.localeCompare(y));
      expect(byName.map(([, name, state, ready, via]) => [name, state, ready, via])).toEqual(
        members([['ann', 'bob', 'cy'][n] ?? '']).map((name) => [name, 'open', 'open', 'direct']),
      );
    });
    expect([result.sentAll, result.sentOne, result.toSelf]).toEqual([2, true, false]);
    expect(result.afterLeave).toEqual({ toGone: false, toBob: 1, goneState: 'left' });
    expect(result.heard).toEqual([[], ['ann: hello all', 'ann: just us'], ['ann: hello all', 'bob: just to cy']]);
    // cy closed its channels: both others saw them close; cy itself heard of nobody leaving.
    expect(result.left).toEqual([['cy closed'], ['cy closed', 'ann closed'], []]);
    expect(result.bobAlone).toEqual({ states: ['left', 'left'], sent: 0 });
    // Each of the three reported its two links connected, directly.
    const after = await connectionsCounted(adminPort);
    expect({ direct: (after.direct ?? 0) - (before.direct ?? 0), relay: (after.relay ?? 0) - (before.relay ?? 0), failed: (after.failed ?? 0) - (before.failed ?? 0) }).toEqual({
      direct: 6,
      relay: 0,
      failed: 0,
    });
  });

  it('counts a member that joined over HTTP as left at once and connects the others; with only HTTP members, rejects mesh_failed', async () => {
    const result = await p.evaluate<Record<string, unknown>>(`(async () => {
      ${PRELUDE}
      const code = 'mesh-http-' + Date.now();
      // Member 0 asks over HTTP: it has its answer, and is gone.
      const http = fetch(location.origin + '/', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code, size: 3 }) }).then((r) => r.json());
      await sleep(300);
      const first = client.openMesh(location.origin, { code, size: 3, filterCandidate: loopback, timeoutMs: 10000 });
      await sleep(300);
      const second = client.openMesh(location.origin, { code, size: 3, filterCandidate: loopback, timeoutMs: 10000 });
      const meshes = await Promise.all([first, second]);
      const answer = await http;
      const states = meshes.map((mesh) => [mesh.self, [...mesh.members.values()].map((m) => [m.index, m.state])]);
      meshes.forEach((mesh) => mesh.close());
      return { httpIndex: answer.self.index, states };
    })()`);
    expect(result).toEqual({
      httpIndex: 0,
      states: [
        [1, [[0, 'left'], [2, 'open']]],
        [2, [[0, 'left'], [1, 'open']]],
      ],
    });

    // Two members over HTTP (each its own connection) and one page: nobody to open a channel to.
    const lonelyCode = `mesh-http-alone-${Date.now()}`;
    const posts = [0, 1].map(() => {
      const dispatcher = new Agent({ connect: { ca: cert } });
      return fetch(`${origin}/`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code: lonelyCode, size: 3 }), dispatcher }).then(
        async (response) => {
          await response.arrayBuffer();
          await dispatcher.close();
          return response.status;
        },
      );
    });
    await expect.poll(async () => ((await (await fetch(`${origin}/healthz`, { dispatcher: new Agent({ connect: { ca: cert } }) })).json()) as { waiting: number }).waiting).toBe(2);
    const alone = await p.evaluate<string>(`(async () => {
      ${PRELUDE}
      try {
        await client.openMesh(location.origin, { code: ${JSON.stringify(lonelyCode)}, size: 3, timeoutMs: 10000 });
        return 'resolved?';
      } catch (error) {
        return error.code + ': ' + error.message;
      }
    })()`);
    expect(alone).toBe("mesh_failed: no member's data channel opened (0 failed, 2 left)");
    expect(await Promise.all(posts)).toEqual([200, 200]);
  });

  it('rejects a size or min the server refuses, or a pool and a code together, with the server’s PairupError', async () => {
    const refusals = await p.evaluate<string[]>(`(async () => {
      ${PRELUDE}
      const tries = [
        { code: 'bad-size-1', size: 1 },
        { code: 'bad-size-99', size: 99 },
        { code: 'half-size', size: 2.5 },
        { pool: 'p', code: 'c', size: 3 },
        { code: 'bad-min', size: 3, min: 4 },
      ];
      const out = [];
      for (const options of tries) {
        try {
          await client.openMesh(location.origin, { ...options, timeoutMs: 5000 });
          out.push('formed?');
        } catch (error) {
          out.push(error instanceof client.PairupError ? error.status + ' ' + error.code + ': ' + error.message : String(error));
        }
      }
      return out;
    })()`);
    expect(refusals).toEqual([
      '400 invalid_size: size must be a whole number from 2 to 8 (MAX_GROUP_SIZE)',
      '400 invalid_size: size must be a whole number from 2 to 8 (MAX_GROUP_SIZE)',
      '400 invalid_size: size must be a whole number from 2 to 8 (MAX_GROUP_SIZE)',
      '400 pool_and_code: give either pool or code, not both',
      '400 invalid_min: min must be a whole number from 2 to size (3)',
    ]);
  });

  it('rejects with the signal’s reason when it aborts while waiting, and with 408 timeout when no group forms in time', async () => {
    const outcomes = await p.evaluate<string[]>(`(async () => {
      ${PRELUDE}
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error('page closed')), 300);
      const out = [];
      try {
        await client.openMesh(location.origin, { code: 'nobody-' + Date.now(), size: 3, timeoutMs: Infinity, signal: controller.signal });
      } catch (error) {
        out.push(String(error.message));
      }
      try {
        await client.openMesh(location.origin, { code: 'lonely-' + Date.now(), size: 4, timeoutMs: 1500 });
      } catch (error) {
        out.push(error.status + ' ' + error.code + ': ' + error.message);
      }
      return out;
    })()`);
    expect(outcomes).toEqual(['page closed', '408 timeout: no group of 4 formed within 1.5 s']);
  });

  it('rejects closed when the page closes the mesh as the group forms; the other member, left before any channel, rejects mesh_failed', async () => {
    const outcomes = await p.evaluate<string[]>(`(async () => {
      ${PRELUDE}
      const code = 'mesh-closed-early-' + Date.now();
      const attempt = (options) => client.openMesh(location.origin, { code, size: 3, timeoutMs: 10000, ...options }).then(
        () => 'resolved?',
        (error) => error.code + ': ' + error.message,
      );
      return Promise.all([attempt({ onMatched: (mesh) => mesh.close() }), attempt({}), attempt({ onMatched: (mesh) => mesh.close() })]);
    })()`);
    expect(outcomes).toEqual([
      'closed: the mesh was closed before its channels opened',
      "mesh_failed: no member's data channel opened (0 failed, 2 left)",
      'closed: the mesh was closed before its channels opened',
    ]);
  });

  it('makes a group of two a pair, which meets connectPeer and openDataChannel on the other side', async () => {
    const result = await p.evaluate<Record<string, unknown>>(`(async () => {
      ${PRELUDE}
      const code = 'mesh-pair-' + Date.now();
      const meshing = client.openMesh(location.origin, { code, size: 2, filterCandidate: loopback, timeoutMs: 10000 });
      await sleep(300);
      const peer = await client.connectPeer({ url: location.origin, code, timeoutMs: 10000 });
      const { channel } = await client.openDataChannel(peer, { filterCandidate: loopback, reportOutcome: false });
      const mesh = await meshing;
      const heard = [];
      channel.addEventListener('message', (event) => heard.push('pair heard ' + event.data));
      mesh.on('message', (member, data) => heard.push('mesh heard ' + data + ' from ' + member.index));
      const other = [...mesh.members.keys()][0];
      mesh.send(other, 'hi pair');
      channel.send('hi mesh');
      await until(() => heard.length === 2);
      mesh.close();
      peer.close();
      return { self: mesh.self, size: mesh.size, other, initiator: peer.match.initiator, heard: heard.sort() };
    })()`);
    // The mesh waited: index 0, as the pair's initiator (the waiter); the newcomer offered.
    expect(result).toEqual({ self: 0, size: 2, other: 1, initiator: false, heard: ['mesh heard hi mesh from 1', 'pair heard hi pair'] });
  });
});

describe('openMesh against a server whose RELAY_IDLE_MS is 1 s', () => {
  let idle: ServerProcess | undefined;
  let idlePage: Page;
  beforeAll(async () => {
    const running = spawnServer(
      { HOST: '127.0.0.1', PORT: '0', TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem', MAX_WAITING_PER_IP: '0', RELAY_IDLE_MS: '1000' },
      dir ?? tmpdir(),
    );
    idle = running;
    const idleOrigin = `https://127.0.0.1:${await running.port}`;
    if (browser === undefined) throw new Error('no browser');
    idlePage = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
    await idlePage.goto(`${idleOrigin}/demo/`);
  });
  afterAll(async () => {
    if (idle !== undefined && idle.child.exitCode === null) {
      idle.child.kill('SIGTERM');
      await idle.exit;
    }
  });

  it('keeps open channels when the server ends the idle relays and says peer_left: the group still chats, nobody left', async () => {
    const result = await idlePage.evaluate<Record<string, unknown>>(`(async () => {
      ${PRELUDE}
      const code = 'mesh-idle-' + Date.now();
      const meshes = await Promise.all([0, 1, 2].map(() => client.openMesh(location.origin, { code, size: 3, filterCandidate: loopback, timeoutMs: 10000 })));
      const left = [];
      const heard = [];
      for (const mesh of meshes) {
        mesh.on('leave', (member, reason) => left.push(mesh.self + ' saw ' + member.index + ' ' + reason));
        mesh.on('message', (member, data) => heard.push(mesh.self + ' heard ' + data));
      }
      // The relays go idle (no signal for 1 s): the server ends them, each member told peer_left for the others.
      await sleep(2500);
      for (const mesh of meshes) mesh.sendAll('after idle from ' + mesh.self);
      await until(() => heard.length === 6);
      const states = meshes.map((mesh) => [...mesh.members.values()].map((m) => m.state));
      meshes.forEach((mesh) => mesh.close());
      return { left, heard: heard.length, states };
    })()`);
    expect(result).toEqual({ left: [], heard: 6, states: [['open', 'open'], ['open', 'open'], ['open', 'open']] });
  });
});
