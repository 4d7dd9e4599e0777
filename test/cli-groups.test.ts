import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeArgs, runNode, type Finished } from './helpers/process.js';
import { eventually, startServer, type TestServer } from './helpers/server.js';

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const pairup = (args: string[]): Promise<Finished> => runNode([...nodeArgs(CLI), ...args]);

let server: TestServer;
let dir: string;
let cacert: string;

beforeAll(async () => {
  server = await startServer();
  dir = await mkdtemp(join(tmpdir(), 'pairup-cli-groups-'));
  cacert = join(dir, 'ca.pem');
  await writeFile(cacert, server.cert);
});
afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('pairup find --size', () => {
  it("prints the other members' addresses, one a line, by index; --json the whole group", async () => {
    const first = pairup(['find', server.origin, '--code', 'cli-trio', '--size', '3', '--cacert', cacert, '--json']);
    await eventually(() => server.app.lobby.waiting === 1, 10_000, 'the first');
    const second = pairup(['find', server.origin, '--code', 'cli-trio', '--size', '3', '--cacert', cacert]);
    await eventually(() => server.app.lobby.waiting === 2, 10_000, 'the second');
    const third = await pairup(['find', server.origin, '--code', 'cli-trio', '--size', '3', '--cacert', cacert]);
    const [firstRun, secondRun] = [await first, await second];
    expect([firstRun.code, firstRun.stderr, secondRun.code, secondRun.stderr, third.code, third.stderr]).toEqual([0, '', 0, '', 0, '']);
    const group = JSON.parse(firstRun.stdout) as { code: string; size: number; self: { index: number; address: string }; members: { index: number; address: string }[] };
    expect([group.code, group.size, group.self.index, group.members.map((m) => m.index)]).toEqual(['cli-trio', 3, 0, [1, 2]]);
    const [b, c] = group.members.map((m) => m.address);
    expect(secondRun.stdout).toBe(`${group.self.address}\n${String(c)}\n`);
    expect(third.stdout).toBe(`${group.self.address}\n${String(b)}\n`);
  });

  it('says what is wrong with a size, in one line, exit 1', async () => {
    expect(await pairup(['find', server.origin, '--size', 'three', '--cacert', cacert])).toEqual({ code: 1, stdout: '', stderr: 'pairup: --size needs a whole number, got "three"\n' });
    // A value that looks like an option: Node's parser says so over three lines; pairup prints them as one.
    expect(await pairup(['find', server.origin, '--size', '-3', '--cacert', cacert])).toEqual({
      code: 1,
      stdout: '',
      stderr:
        "pairup: Option '--size' argument is ambiguous. Did you forget to specify the option argument for '--size'? To specify an option argument starting with a dash use '--size=-XYZ'.\n",
    });
    expect(await pairup(['find', server.origin, '--size', '3', '--min', '4', '--cacert', cacert])).toEqual({ code: 1, stdout: '', stderr: 'pairup: min must be a whole number from 2 to size (3)\n' });
  });

  it('refuses signal --size: groups are asked for over HTTP for now', async () => {
    expect(await pairup(['signal', server.origin, '--size', '3', '--cacert', cacert])).toEqual({
      code: 1,
      stdout: '',
      stderr: 'pairup: signal relays a pair; for a group, pairup find --size N prints its members (openMesh in pairup/browser relays a group)\n',
    });
  });
});
