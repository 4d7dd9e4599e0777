import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ask, eventually, json, startServer, TestClient, type TestServer } from '../../helpers/server.js';

let server: TestServer;
beforeAll(async () => {
  server = await startServer({ MAX_EVENT_LOOP_DELAY_MS: '50' }, '127.0.0.1', { pressureSampleMs: 300 });
});
afterAll(() => server.close());

/** Keeps the event loop busy, as a burst of work would. */
function blockEventLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}

describe('event-loop protection', () => {
  it('refuses new requests while the loop lags, and still serves the client already waiting', async () => {
    const client = () => new TestClient(server.origin, server.cert);
    const [waiter, refused, partner, probe] = [client(), client(), client(), client()];
    try {
      const waiting = ask(waiter.client, server.origin, '/?pool=busy', { headers: { accept: 'application/json' } });
      await eventually(() => server.app.lobby.waiting === 1);
      // Connected beforehand: after the stall only the request itself has to arrive, well before
      // the sampler's next look (300 ms) finds the loop healthy again.
      expect((await ask(refused.client, server.origin, '/healthz')).status).toBe(200);
      // The server takes the mean delay of the 10 ms samples since its last look (minus 10 ms): one
      // stall must outweigh the ~30 quick samples of a 300 ms window to put the mean over 50 ms.
      blockEventLoop(2000);
      await new Promise((resolve) => setTimeout(resolve, 20)); // the sampler runs after the stall

      const answer = await ask(refused.client, server.origin, '/?pool=busy', { headers: { accept: 'application/json' } });
      expect(answer.status).toBe(503);
      expect(answer.headers['retry-after']).toBe('1');
      expect(json(answer)).toEqual({
        error: 'overloaded',
        message: 'server overloaded (event loop delay over MAX_EVENT_LOOP_DELAY_MS); try again shortly',
      });
      expect(server.app.lobby.waiting).toBe(1);

      // Once the loop has recovered, a partner gets in and the waiter is answered.
      for (let tries = 0; (await ask(probe.client, server.origin, '/healthz')).status !== 200; tries++) {
        expect(tries).toBeLessThan(50);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const paired = json(await ask(partner.client, server.origin, '/?pool=busy', { headers: { accept: 'application/json' } }));
      expect(paired.peer).toBe(`127.0.0.1:${waiter.localPort}`);
      expect(json(await waiting).peer).toBe(`127.0.0.1:${partner.localPort}`);
      expect(server.warnings()).toEqual([]);
    } finally {
      await Promise.all([waiter, refused, partner, probe].map((c) => c.close()));
    }
  });
});
