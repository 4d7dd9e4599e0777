import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPeer, PairupError, type GroupMatch } from '../../src/client/index.js';
import { eventually, startServer, type TestServer } from '../helpers/server.js';

describe('findPeer with size', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ FILL_WAIT_MS: '200' });
  });
  afterAll(() => server.close());

  it('resolves every member of a group of three with the group: one matchId, its own index, the others by index', async () => {
    const ask = (name: string) => findPeer({ url: server.origin, ca: server.cert, pool: 'client-trio', size: 3, meta: { name }, timeoutMs: 5000 });
    const first = ask('a');
    await eventually(() => server.app.lobby.waiting === 1, 5000, 'the first');
    const second = ask('b');
    await eventually(() => server.app.lobby.waiting === 2, 5000, 'the second');
    const answers = await Promise.all([first, second, ask('c')]);
    expect(answers.map((answer) => 'members' in answer)).toEqual([true, true, true]);
    const groups = answers as GroupMatch[];
    expect(new Set(groups.map((g) => g.matchId)).size).toBe(1);
    expect(groups.map((g) => [g.size, g.self.index, g.offerTo])).toEqual([
      [3, 0, [1, 2]],
      [3, 1, [2]],
      [3, 2, []],
    ]);
    expect(groups[0]?.members.map((m) => [m.index, m.address, m.meta])).toEqual([
      [1, groups[1]?.self.address, { name: 'b' }],
      [2, groups[2]?.self.address, { name: 'c' }],
    ]);
  });

  it('forms a group of min when the oldest has waited the server’s FILL_WAIT_MS', async () => {
    const ask = () => findPeer({ url: server.origin, ca: server.cert, pool: 'client-min', size: 5, min: 2, timeoutMs: 5000 });
    const first = ask();
    await eventually(() => server.app.lobby.waiting === 1, 5000, 'the first');
    const [a, b] = (await Promise.all([first, ask()])) as GroupMatch[];
    expect([a?.size, b?.size, a?.matchId === b?.matchId]).toEqual([2, 2, true]);
  });

  it('rejects with the server’s 400 for a size beyond MAX_GROUP_SIZE, without asking again', async () => {
    const failed = await findPeer({ url: server.origin, ca: server.cert, size: 9, timeoutMs: 5000 }).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(PairupError);
    expect([(failed as PairupError).status, (failed as PairupError).code, (failed as PairupError).message]).toEqual([400, 'invalid_size', 'size must be a whole number from 2 to 8 (MAX_GROUP_SIZE)']);
  });
});
