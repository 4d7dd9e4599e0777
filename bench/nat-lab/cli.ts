/**
 * `npm run nat-lab`: how often two peers behind each kind of NAT connect through pairup, measured in
 * network namespaces on this machine (root). See bench/nat-lab/README.md.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runLab } from './lab.js';
import { missing } from './preflight.js';
import { COLUMNS, formatMatrix, type Column } from './report.js';
import { stopAll } from './processes.js';
import { BEHAVIOURS, destroyTopology, prefixFor, removeStale, type Behaviour } from './topology.js';

const RESULTS = fileURLToPath(new URL('../results/', import.meta.url));

const USAGE = 'usage: npm run nat-lab -- [--trials N] [--quick] [--only udp|udp-untimed|browser] [--cells none-edm,eim-eim] [--turn] [--out FILE.json]';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      trials: { type: 'string' },
      quick: { type: 'boolean' },
      only: { type: 'string' },
      cells: { type: 'string' },
      turn: { type: 'boolean' },
      out: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const trials = values.quick === true ? 1 : Number(values.trials ?? '10');
  if (!Number.isInteger(trials) || trials < 1 || trials > 1000) throw new Error(`--trials must be an integer from 1 to 1000, got ${String(values.trials)}`);
  if (values.only !== undefined && !COLUMNS.includes(values.only as Column)) throw new Error(`--only must be ${COLUMNS.join(', ')}, got ${values.only}`);
  const columns = values.only === undefined ? COLUMNS : [values.only as Column];
  const cells = values.cells?.split(',').map((text) => {
    const [a, b, ...rest] = text.split('-');
    if (!BEHAVIOURS.includes(a as Behaviour) || !BEHAVIOURS.includes(b as Behaviour) || rest.length > 0) {
      throw new Error(`--cells takes pairs like none-edm (of ${BEHAVIOURS.join(', ')}), got ${text}`);
    }
    return [a as Behaviour, b as Behaviour] as const;
  });
  const turn = values.turn === true;
  const out = resolve(values.out ?? `${RESULTS}nat-lab-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);

  const reason = await missing(columns, turn);
  if (reason !== undefined) {
    process.stdout.write(`nat-lab: not run: ${reason}\n`);
    return 2;
  }
  for (const ns of await removeStale()) process.stdout.write(`nat-lab: removed ${ns}, left by a run that was killed\n`);
  // Interrupted: stop what runs (by PID), remove the namespaces, then exit.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stdout.write(`nat-lab: ${signal}: cleaning up\n`);
      void stopAll()
        .then(() => destroyTopology(prefixFor(process.pid)))
        .finally(() => process.exit(130));
    });
  }
  const result = await runLab({ trials, columns, turn, ...(cells === undefined ? {} : { cells }), log: (line) => process.stdout.write(`${line}\n`) });
  process.stdout.write(`\n${formatMatrix(result.cells, columns)}\n\n`);
  const { labConnections: lab, pairupConnections: counted, unknownReports } = result.metrics;
  process.stdout.write(`pairup made ${String(result.metrics.pairupMatches)} pairs; the lab saw ${result.metrics.labPairs} trials matched\n`);
  process.stdout.write(
    `pairup_connections_total: direct ${counted.direct}, relay ${counted.relay}, failed ${counted.failed}; ` +
      `the lab saw direct ${lab.direct}, relay ${lab.relay}, failed ${lab.failed}` +
      `${unknownReports > 0 ? ` (and ${unknownReports} failed browser trials whose pages' reports it cannot see)` : ''}\n`,
  );
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`${trials} trial(s) per cell in ${result.durationS} s, written to ${out}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`nat-lab: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
