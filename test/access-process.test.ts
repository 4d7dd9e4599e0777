/**
 * App keys end to end, on the real process: `pairup key new` makes a key and its entry, a server
 * started with APP_KEYS_FILE lets that key in and no other, `pairup find --key` and the Node
 * client's `key` pair through it, and SIGHUP reloads the file (a broken file keeps the old keys).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPeer } from '../src/client/index.js';
import { hashKey } from '../src/net/app-keys.js';
import { nodeArgs, runNode, spawnServer, type ServerProcess } from './helpers/process.js';
import { ask, TestClient } from './helpers/server.js';

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));

let dir: string;
let proc: ServerProcess;
let origin: string;
let cert: string;
let key: string;
let entry: Record<string, unknown>;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairup-access-'));
  const made = await runNode([...nodeArgs(CLI), 'key', 'new', '--app', 'chess']);
  expect([made.code, made.stderr]).toEqual([0, '']);
  const [line1 = '', line2 = ''] = made.stdout.trimEnd().split('\n');
  key = line1;
  entry = JSON.parse(line2) as Record<string, unknown>;
  await writeFile(join(dir, 'keys.json'), JSON.stringify({ keys: [entry] }));
  proc = spawnServer({ HOST: '127.0.0.1', PORT: '0', STUN_PORT: '0', APP_KEYS_FILE: 'keys.json' }, dir);
  origin = `https://127.0.0.1:${await proc.port}`;
  cert = await readFile(join(dir, 'certs', 'dev-cert.pem'), 'utf8');
}, 30_000);
afterAll(async () => {
  proc.child.kill('SIGTERM');
  await proc.exit;
  await rm(dir, { recursive: true, force: true });
});

async function getStatus(path: string, headers: Record<string, string> = {}): Promise<[number, string]> {
  const client = new TestClient(origin, cert);
  try {
    const answer = await ask(client.client, origin, path, { headers: { accept: 'application/json', ...headers } });
    return [answer.status, (JSON.parse(answer.text) as { error: string }).error];
  } finally {
    await client.close();
  }
}

describe('app keys on the real process', () => {
  it('pairup key new prints a key and an entry holding only its SHA-256', () => {
    expect(key).toMatch(/^pairup_[A-Za-z0-9_-]{43}$/);
    expect(entry).toEqual({ app: 'chess', sha256: hashKey(key) });
    expect(JSON.stringify(entry)).not.toContain(key.slice(7));
  });

  it('refuses no key and a wrong one (401), and pairs pairup find --key with the Node client key', async () => {
    expect(await getStatus('/?pool=p')).toEqual([401, 'key_required']);
    expect(await getStatus('/?pool=p', { authorization: 'Bearer pairup_wrong' })).toEqual([401, 'unknown_key']);
    await expect(findPeer({ url: origin, ca: cert, pool: 'p', timeoutMs: 2000 })).rejects.toMatchObject({ code: 'key_required', status: 401 });
    const cacert = join(dir, 'ca.pem');
    await writeFile(cacert, cert);
    const cli = runNode([...nodeArgs(CLI), 'find', origin, '--pool', 'chess', '--cacert', cacert, '--key', key, '--timeout', '20']);
    const match = await findPeer({ url: origin, ca: cert, pool: 'chess', key, timeoutMs: 20_000 });
    const run = await cli;
    expect([run.code, run.stderr]).toEqual([0, '']);
    expect(match.pool).toBe('chess');
    expect(run.stdout).toBe(`${match.self}\n`);
  }, 30_000);

  it('reads PAIRUP_KEY from the environment: pairup find and pairup signal pair with it and no --key', async () => {
    const cacert = join(dir, 'ca.pem');
    await writeFile(cacert, cert);
    const env = { PAIRUP_KEY: key };
    const found = runNode([...nodeArgs(CLI), 'find', origin, '--pool', 'from-env', '--cacert', cacert, '--json', '--timeout', '20'], dir, env);
    const signalled = runNode([...nodeArgs(CLI), 'signal', origin, '--pool', 'from-env', '--cacert', cacert, '--timeout', '20'], dir, env);
    const [find, signal] = await Promise.all([found, signalled]);
    expect([find.code, find.stderr, signal.code, signal.stderr]).toEqual([0, '', 0, '']);
    const fromFind = JSON.parse(find.stdout) as { pool: string; self: string; peer: string };
    const fromSignal = JSON.parse(signal.stdout.split('\n', 1)[0] ?? '') as { type: string; pool: string; self: string; peer: string };
    expect([fromFind.pool, fromSignal.type, fromSignal.pool]).toEqual(['from-env', 'matched', 'from-env']);
    expect([fromFind.peer, fromSignal.peer]).toEqual([fromSignal.self, fromFind.self]);
  }, 30_000);

  it('with a wrong PAIRUP_KEY, find and signal exit 1 naming 401 unknown_key and where the key came from; --key wins over it', async () => {
    const cacert = join(dir, 'ca.pem');
    await writeFile(cacert, cert);
    const env = { PAIRUP_KEY: 'pairup_not-a-key-of-this-server' };
    const unknown = 'pairup: this app key is not valid here (401 unknown_key; the key came from PAIRUP_KEY)\n';
    const find = await runNode([...nodeArgs(CLI), 'find', origin, '--pool', 'wrong', '--cacert', cacert, '--timeout', '5'], dir, env);
    expect([find.code, find.stdout, find.stderr]).toEqual([1, '', unknown]);
    const signal = await runNode([...nodeArgs(CLI), 'signal', origin, '--pool', 'wrong', '--cacert', cacert, '--timeout', '5'], dir, env);
    expect([signal.code, signal.stdout, signal.stderr]).toEqual([1, '', unknown]);
    const badFlag = await runNode([...nodeArgs(CLI), 'find', origin, '--pool', 'wrong', '--cacert', cacert, '--key', 'pairup_also-wrong'], dir, {});
    expect([badFlag.code, badFlag.stderr]).toEqual([1, 'pairup: this app key is not valid here (401 unknown_key; the key came from --key)\n']);
    // The command line over the environment: the right --key is used, the wrong PAIRUP_KEY is not.
    const overridden = await runNode([...nodeArgs(CLI), 'find', origin, '--pool', 'wrong', '--cacert', cacert, '--timeout', '0.05', '--key', key], dir, env);
    expect([overridden.code, overridden.stdout, overridden.stderr]).toEqual([2, '', 'pairup: nobody came within 0.05 s\n']);
    // An empty PAIRUP_KEY is no key.
    const none = await runNode([...nodeArgs(CLI), 'find', origin, '--pool', 'wrong', '--cacert', cacert], dir, { PAIRUP_KEY: '' });
    expect([none.code, none.stdout, none.stderr]).toEqual([
      1,
      '',
      'pairup: this server takes requests with an app key: send Authorization: Bearer KEY, or ?key=KEY (401 key_required; give the app key with --key KEY or PAIRUP_KEY)\n',
    ]);
  }, 30_000);

  it('reloads the file on SIGHUP; a file that does not parse keeps the keys in force', async () => {
    await writeFile(join(dir, 'keys.json'), '{ not json');
    proc.child.kill('SIGHUP');
    await proc.line(/app keys reload refused/);
    expect(await getStatus('/?pool=q&timeout=0.05', { authorization: `Bearer ${key}` })).toEqual([408, 'timeout']);
    await writeFile(join(dir, 'keys.json'), JSON.stringify({ keys: [{ app: 'other', sha256: hashKey('pairup_other') }] }));
    proc.child.kill('SIGHUP');
    await proc.line(/app keys reloaded/);
    expect(await getStatus('/?pool=q', { authorization: `Bearer ${key}` })).toEqual([401, 'unknown_key']);
    expect(await getStatus('/?pool=q&timeout=0.05', { authorization: 'Bearer pairup_other' })).toEqual([408, 'timeout']);
    // No key, nor any part of one, in the log.
    expect(proc.stdout.join('\n')).not.toContain(key.slice(7));
    expect(proc.stdout.join('\n')).not.toContain('pairup_other');
  }, 30_000);
});

