import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/ops/metrics.js';
import { ask, eventually, startServer, TestClient, type TestServer } from '../helpers/server.js';

/** The samples of a Prometheus text exposition whose name starts with `prefix`: `name{labels}` → value. */
async function samples(metrics: Metrics, prefix: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const line of (await metrics.registry.metrics()).split('\n')) {
    if (line === '' || line.startsWith('#') || !line.startsWith(prefix)) continue;
    const at = line.lastIndexOf(' ');
    out[line.slice(0, at)] = Number(line.slice(at + 1));
  }
  return out;
}

describe('metrics of groups', () => {
  let server: TestServer;
  const metrics = new Metrics(10);
  const clients: TestClient[] = [];
  const get = (path: string) => {
    const c = new TestClient(server.origin, server.cert);
    clients.push(c);
    return ask(c.client, server.origin, path);
  };
  const waitFor = (n: number) => eventually(() => server.app.lobby.waiting === n, 2000, `${n} waiting`);

  beforeAll(async () => {
    server = await startServer({ FILL_WAIT_MS: '100' }, '127.0.0.1', { metrics });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server.close();
  });

  it('counts each group once by the size asked, partial groups by size and min, and each member’s outcome', async () => {
    // A full group of three, twice; a group of four formed by min 2 with two members; a pair.
    for (let round = 0; round < 2; round++) {
      const first = get('/?pool=m&size=3');
      await waitFor(1);
      const second = get('/?pool=m&size=3');
      await waitFor(2);
      expect((await get('/?pool=m&size=3')).status).toBe(200);
      expect([(await first).status, (await second).status]).toEqual([200, 200]);
    }
    const early = get('/?pool=m&size=4&min=2');
    await waitFor(1);
    expect((await get('/?pool=m&size=4&min=2')).status).toBe(200);
    expect((await early).status).toBe(200);
    const waiter = get('/?pool=m');
    await waitFor(1);
    expect((await get('/?pool=m')).status).toBe(200);
    expect((await waiter).status).toBe(200);

    expect(await samples(metrics, 'pairup_groups_total')).toEqual({ 'pairup_groups_total{size="3"}': 2, 'pairup_groups_total{size="4"}': 1 });
    expect(await samples(metrics, 'pairup_partial_groups_total')).toEqual({ 'pairup_partial_groups_total{size="4",min="2"}': 1 });
    // Matches: two groups of three, one of four, one pair; outcomes: one per member.
    expect(await samples(metrics, 'pairup_matches_total')).toEqual({ 'pairup_matches_total{pool="m"}': 4 });
    expect((await samples(metrics, 'pairup_outcomes_total{pool="m",outcome="matched"}'))['pairup_outcomes_total{pool="m",outcome="matched"}']).toBe(10);
    expect(await samples(metrics, 'pairup_waiting{')).toEqual({ 'pairup_waiting{pool="m"}': 0 });
  });
});
