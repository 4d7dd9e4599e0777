/**
 * The NAT lab's reduced matrix (bench/nat-lab): one trial per cell of the UDP example (timed by
 * pairup, and without its timing) and of the demo page in Chromium, in real namespaces behind real nftables NAT, against pairup's build, with
 * coturn on the public segment (pairup hands out its credentials in every match). It asserts what
 * connects today, and that pairup's outcome metrics count what the lab saw. Without root, namespaces or nftables it says so in one line
 * and is skipped; under CI (where root is expected) it runs and fails with that line instead.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ALL_CELLS, runLab, type LabResult } from '../../bench/nat-lab/lab.js';
import { missing } from '../../bench/nat-lab/preflight.js';
import { COLUMNS } from '../../bench/nat-lab/report.js';
import { namespacesUnder, prefixFor, removeStale } from '../../bench/nat-lab/topology.js';

const reason = await missing(COLUMNS, true);
const ci = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false';
if (reason !== undefined) process.stdout.write(`nat-lab: ${ci ? 'cannot run under CI' : 'skipped'}: ${reason}\n`);

describe.skipIf(reason !== undefined && !ci)('the NAT lab, one trial per cell, with TURN', () => {
  let result: LabResult;
  const lines: string[] = [];
  beforeAll(async () => {
    if (reason !== undefined) throw new Error(`nat-lab: ${reason}`);
    await removeStale();
    result = await runLab({ trials: 1, columns: COLUMNS, turn: true, log: (line) => lines.push(line) });
  });

  const row = (column: 'udp' | 'udp-untimed' | 'browser') =>
    result.cells.map((cell) => {
      const stats = cell[column];
      return [`${cell.a} × ${cell.b}`, stats?.successes, stats?.direct, stats?.relayed, Object.keys(stats?.paths ?? {})];
    });
  const why = () => lines.join('\n');

  it('measures every pair of behaviours; pairup made one pair per trial and counted each side as the lab saw it', () => {
    expect(result.cells.map((cell) => [cell.a, cell.b])).toEqual(ALL_CELLS);
    // Timed UDP: 5 cells direct, 1 failed; untimed: 4 direct, 2 failed; browsers: 4 direct, 2 relayed; two sides each.
    expect(result.metrics).toEqual({
      labPairs: 18,
      pairupMatches: 18,
      labConnections: { direct: 26, relay: 4, failed: 6 },
      pairupConnections: { direct: 26, relay: 4, failed: 6 },
      unknownReports: 0,
    });
  });

  // Timed by pairup: both sides of eim × eim open their filters at once, and eim × edm is crossed by
  // the edm side sending from 256 ports while the eim side probes; two edm sides are given relay.
  it('the UDP example timed by pairup connects directly in every cell but edm × edm, on the first attempt where both mappings are endpoint-independent', () => {
    expect(row('udp').map(([cell, successes, direct, relayed]) => [cell, successes, direct, relayed]), why()).toEqual([
      ['none × none', 1, 1, 0],
      ['none × eim', 1, 1, 0],
      ['none × edm', 1, 1, 0],
      ['eim × eim', 1, 1, 0],
      ['eim × edm', 1, 1, 0],
      ['edm × edm', 0, 0, 0],
    ]);
    const independent = result.cells.filter((cell) => cell.a !== 'edm' && cell.b !== 'edm');
    expect(independent.map((cell) => cell.udp?.firstAttempt), why()).toEqual([1, 1, 1]);
  });

  // Without the timing, the example answers where its partner's authenticated hello came from: behind
  // an endpoint-dependent NAT (edm) that is another port than the one STUN showed, and none × edm
  // connects; eim × edm and edm × edm do not.
  it('the UDP example without pairup’s timing connects only where a path opens by itself', () => {
    expect(row('udp-untimed').map(([cell, successes, direct, relayed]) => [cell, successes, direct, relayed]), why()).toEqual([
      ['none × none', 1, 1, 0],
      ['none × eim', 1, 1, 0],
      ['none × edm', 1, 1, 0],
      ['eim × eim', 1, 1, 0],
      ['eim × edm', 0, 0, 0],
      ['edm × edm', 0, 0, 0],
    ]);
  });


  // eim × edm and edm × edm have no direct path (the eim side's filter drops the edm side's fresh
  // port; two edm sides never meet): there the match's TURN credential carries them.
  it('browsers connect in every cell: directly wherever a direct path exists, relayed only where none does', () => {
    expect(row('browser'), why()).toEqual([
      ['none × none', 1, 1, 0, ['host/host ↔ host/host']],
      ['none × eim', 1, 1, 0, ['host/srflx ↔ srflx/host']],
      ['none × edm', 1, 1, 0, ['host/prflx ↔ prflx/host']],
      ['eim × eim', 1, 1, 0, ['srflx/srflx ↔ srflx/srflx']],
      ['eim × edm', 1, 0, 1, ['relay/prflx ↔ prflx/relay']],
      ['edm × edm', 1, 0, 1, ['relay/prflx ↔ prflx/relay']],
    ]);
  });

  it('opens each path, direct or relayed, within 10 s of the match (UDP) or 5 s of the second page’s load (browsers)', () => {
    const udp = result.cells.flatMap((cell) => [cell.udp?.p95Ms, cell['udp-untimed']?.p95Ms]).filter((ms) => ms !== null && ms !== undefined);
    const browser = result.cells.map((cell) => cell.browser?.p95Ms).filter((ms) => ms !== null && ms !== undefined);
    expect([udp.length, browser.length]).toEqual([9, 6]);
    for (const ms of udp) expect(ms).toBeLessThan(10_000);
    for (const ms of browser) expect(ms).toBeLessThan(5000);
  });

  it('leaves no namespace behind', async () => {
    expect(await namespacesUnder(prefixFor(process.pid))).toEqual([]);
  });
});
