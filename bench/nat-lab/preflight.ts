/** What the lab needs from the machine, checked before anything is built: one line says what is missing. */
import { access, constants } from 'node:fs/promises';
import { CHROMIUM } from './trials/browser.js';
import { PAIRUP_MAIN } from './processes.js';
import type { Column } from './report.js';
import { inNs, sh } from './shell.js';
import { prefixFor } from './topology.js';

const exists = (file: string, mode = constants.F_OK): Promise<boolean> =>
  access(file, mode).then(
    () => true,
    () => false,
  );

const works = (run: Promise<unknown>): Promise<boolean> =>
  run.then(
    () => true,
    () => false,
  );

/** The reason the lab cannot run here (one line), or undefined when it can. */
export async function missing(columns: readonly Column[], turn: boolean): Promise<string | undefined> {
  if (process.platform !== 'linux') return `needs Linux network namespaces (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and nftables)';
  const problems: string[] = [];
  if (!(await works(sh('ip', ['-V'])))) problems.push('needs `ip` (apt-get install -y iproute2)');
  if (!(await works(sh('nft', ['--version'])))) problems.push('needs `nft` (apt-get install -y nftables)');
  if (columns.includes('browser') && !(await exists(CHROMIUM, constants.X_OK))) problems.push(`needs ${CHROMIUM} (apt-get install -y chromium)`);
  if (turn && !(await works(sh('turnserver', ['--version'])))) problems.push('needs `turnserver` (apt-get install -y coturn)');
  if (!(await exists(PAIRUP_MAIN))) problems.push(`needs pairup's build ${PAIRUP_MAIN} (npm run build)`);
  if (problems.length > 0) return problems.join('; ');
  // Root is not enough in every container: try a namespace with a NAT table in it.
  const probe = `${prefixFor(process.pid)}probe`;
  try {
    await sh('ip', ['netns', 'add', probe]);
    await inNs(probe, 'nft', ['-f', '-'], { input: 'table ip nat {\n chain post { type nat hook postrouting priority srcnat; }\n}\n' });
  } catch (error) {
    return `cannot make a network namespace with nftables NAT here: ${(error as Error).message.split('\n')[0] ?? ''}`;
  } finally {
    await sh('ip', ['netns', 'del', probe]).catch(() => undefined);
  }
  return undefined;
}
