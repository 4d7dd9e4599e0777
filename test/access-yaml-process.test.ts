/**
 * A YAML APP_KEYS_FILE on the real process: its keys let their apps in, SIGHUP reloads it, a reload
 * of a file that does not parse keeps the keys in force and logs why (naming the file and the line),
 * and a start with such a file stops with that message.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashKey } from '../src/net/app-keys.js';
import { spawnServer, type ServerProcess } from './helpers/process.js';
import { ask, TestClient } from './helpers/server.js';

const CHESS_KEY = 'pairup_yaml-chess-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const GO_KEY = 'pairup_yaml-go-key-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
const BROKEN = `keys:\n  - app: chess\n    sha256: ${hashKey(CHESS_KEY)}\n  oops\n`;
const BROKEN_REASON = 'APP_KEYS_FILE keys.yaml: is not valid YAML: All mapping items must start at the same column at line 4, column 1';

let dir: string;
let proc: ServerProcess;
let origin: string;
let cert: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairup-yaml-'));
  await writeFile(join(dir, 'keys.yaml'), `# the chess app\nkeys:\n  - app: chess\n    sha256: ${hashKey(CHESS_KEY)}\n    maxWaiting: 10\n`);
  proc = spawnServer({ HOST: '127.0.0.1', PORT: '0', STUN_PORT: '0', APP_KEYS_FILE: 'keys.yaml' }, dir);
  origin = `https://127.0.0.1:${await proc.port}`;
  cert = await readFile(join(dir, 'certs', 'dev-cert.pem'), 'utf8');
}, 30_000);
afterAll(async () => {
  proc.child.kill('SIGTERM');
  await proc.exit;
  await rm(dir, { recursive: true, force: true });
});

async function getStatus(path: string, key?: string): Promise<[number, string]> {
  const client = new TestClient(origin, cert);
  try {
    const headers = { accept: 'application/json', ...(key === undefined ? {} : { authorization: `Bearer ${key}` }) };
    const answer = await ask(client.client, origin, path, { headers });
    return [answer.status, (JSON.parse(answer.text) as { error: string }).error];
  } finally {
    await client.close();
  }
}

describe('a YAML key file on the real process', () => {
  it('lets its key in and no other', async () => {
    expect(await getStatus('/?pool=p&timeout=0.05', CHESS_KEY)).toEqual([408, 'timeout']);
    expect(await getStatus('/?pool=p')).toEqual([401, 'key_required']);
    expect(await getStatus('/?pool=p', GO_KEY)).toEqual([401, 'unknown_key']);
  });

  it('on SIGHUP, keeps the keys in force when the file does not parse (logging why), and takes a good one', async () => {
    await writeFile(join(dir, 'keys.yaml'), BROKEN);
    proc.child.kill('SIGHUP');
    const refused = await proc.line(/app keys reload refused/);
    expect([refused.level, refused.msg, refused.reason]).toEqual([50, 'app keys reload refused; still using the previous keys', BROKEN_REASON]);
    expect(await getStatus('/?pool=p&timeout=0.05', CHESS_KEY)).toEqual([408, 'timeout']);

    await writeFile(join(dir, 'keys.yaml'), `keys:\n  - {"app": "go", "sha256": "${hashKey(GO_KEY)}"}\n`);
    proc.child.kill('SIGHUP');
    const reloaded = await proc.line(/app keys reloaded/);
    expect([reloaded.msg, reloaded.keys]).toEqual(['SIGHUP: app keys reloaded', 1]);
    expect(await getStatus('/?pool=p', CHESS_KEY)).toEqual([401, 'unknown_key']);
    expect(await getStatus('/?pool=p&timeout=0.05', GO_KEY)).toEqual([408, 'timeout']);
  }, 30_000);

  it('does not start with a file that does not parse: exit 1, naming the file and the problem', async () => {
    await writeFile(join(dir, 'broken.yml'), BROKEN);
    const broken = spawnServer({ HOST: '127.0.0.1', PORT: '0', STUN_PORT: '0', APP_KEYS_FILE: 'broken.yml' }, dir);
    expect(await broken.exit).toEqual({ code: 1, signal: null });
    expect(broken.stderr).toBe(`pairup: ${BROKEN_REASON.replace('keys.yaml', 'broken.yml')}\n`);
  }, 30_000);
});
