import { createSocket } from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runNode, spawnServer, type Finished, type ServerProcess } from './helpers/process.js';
import { testCertificate } from './helpers/server.js';

const EXAMPLE = fileURLToPath(new URL('../examples/udp-handshake.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');

function runExample(args: string[]): Promise<Finished> {
  return runNode(['--import', TSX, EXAMPLE, ...args]);
}

let dir: string;
let server: ServerProcess;
let url: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pairup-example-'));
  const { cert, key } = await testCertificate();
  await writeFile(join(dir, 'cert.pem'), cert);
  await writeFile(join(dir, 'key.pem'), key);
  // The server as `npm start` runs it (STUN on the HTTPS port's number), with STUN's second port.
  const free = createSocket('udp4');
  await new Promise<void>((resolve) => free.bind(0, '127.0.0.1', resolve));
  const altPort = free.address().port;
  await new Promise<void>((resolve) => free.close(resolve));
  server = spawnServer({ HOST: '127.0.0.1', PORT: '0', STUN_ALT_PORT: String(altPort), TLS_CERT: 'cert.pem', TLS_KEY: 'key.pem' }, dir);
  url = `https://127.0.0.1:${await server.port}`;
  await server.line(/^STUN responder listening/);
});
afterAll(async () => {
  server.child.kill('SIGTERM');
  await server.exit;
  await rm(dir, { recursive: true, force: true });
});

describe('examples/udp-handshake.ts', () => {
  it('connects two processes over UDP when pairup says, each verifying the other’s authenticated datagram', async () => {
    const args = [url, '--code', 'example-code-1', '--cacert', join(dir, 'cert.pem')];
    const [one, two] = await Promise.all([runExample(args), runExample(args)]);
    expect([one.code, one.stderr, two.code, two.stderr]).toEqual([0, '', 0, '']);
    const mappingOf = (stdout: string) => /^udp mapping (127\.0\.0\.1:\d+) \(nat independent\)$/m.exec(stdout)?.[1];
    const [mappingOne, mappingTwo] = [mappingOf(one.stdout), mappingOf(two.stdout)];
    expect(mappingOne).toBeDefined();
    expect(mappingTwo).toBeDefined();
    expect(one.stdout.split('\n').filter((line) => line.startsWith('connected to'))).toEqual([`connected to ${String(mappingTwo)}`]);
    expect(two.stdout.split('\n').filter((line) => line.startsWith('connected to'))).toEqual([`connected to ${String(mappingOne)}`]);
  });

  it('connects without pairup’s timing too (--untimed: the mapping in meta, hellos at once)', async () => {
    const args = [url, '--code', 'example-code-2', '--cacert', join(dir, 'cert.pem'), '--untimed'];
    const [one, two] = await Promise.all([runExample(args), runExample(args)]);
    expect([one.code, one.stderr, two.code, two.stderr]).toEqual([0, '', 0, '']);
    const mappingOf = (stdout: string) => /^udp mapping (127\.0\.0\.1:\d+)$/m.exec(stdout)?.[1];
    const [mappingOne, mappingTwo] = [mappingOf(one.stdout), mappingOf(two.stdout)];
    expect(one.stdout.split('\n').filter((line) => line.startsWith('connected to'))).toEqual([`connected to ${String(mappingTwo)}`]);
    expect(two.stdout.split('\n').filter((line) => line.startsWith('connected to'))).toEqual([`connected to ${String(mappingOne)}`]);
    expect(one.stdout).not.toContain('punch attempt');
  });
});
