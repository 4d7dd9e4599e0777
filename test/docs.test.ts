/**
 * What a new user meets first: the README's examples can be run in order, and the layout it
 * describes is there in a fresh clone.
 */
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CLOSE_CODES } from '../src/protocol/ws.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const readme = () => readFile(new URL('../README.md', import.meta.url), 'utf8');

describe('README examples', () => {
  it('give the CLI, findPeer() and the UDP example codes of their own, so running them in order works', async () => {
    const text = await readme();
    const section = text.slice(text.indexOf('## Client library and command line'), text.indexOf('## Endpoints'));
    const codes = [...section.matchAll(/--code ([a-z0-9-]+)|code: '([a-z0-9-]+)'/g)].map((m) => m[1] ?? m[2]);
    expect(codes).toEqual(['maple-finch-28', 'purple-otter-42', 'amber-lynx-17', 'quiet-heron-63']);
    const example = await readFile(new URL('../examples/udp-handshake.ts', import.meta.url), 'utf8');
    expect(example).toContain('--code quiet-heron-63');
  });

  it('has a table of contents, and every link within it leads to a heading', async () => {
    const text = await readme();
    // GitHub's anchors: lower case, punctuation dropped, each space a hyphen.
    const anchors = new Set([...text.matchAll(/^#{2,4} (.+)$/gm)].map((m) => (m[1] ?? '').toLowerCase().replace(/[^a-z0-9 _-]/g, '').replace(/ /g, '-')));
    const links = [...text.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1] ?? '');
    expect(text.indexOf('## Contents')).toBeLessThan(text.indexOf('## Quick start'));
    expect(links.length).toBeGreaterThan(30);
    expect(links.filter((link) => !anchors.has(link))).toEqual([]);
  });

  it('runs the pairup command through npx in its shell examples (it is not on PATH in a clone)', async () => {
    const text = await readme();
    const blocks = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
    const lines = blocks.flatMap((block) => block.split('\n')).filter((line) => /(^|[;&|] *)pairup /.test(line));
    expect(lines).toEqual([]);
    expect(blocks.join('\n')).toContain('npx pairup signal https://localhost:3030');
  });

  it('has a Load testing section with the autocannon commands, -c 1 and pipelining explained', async () => {
    const text = await readme();
    const section = text.slice(text.indexOf('## Load testing'), text.indexOf('## Benchmarks'));
    expect(section).toContain('npx autocannon -c 100 -d 10 https://localhost:3030/');
    expect(section).toContain('npx autocannon -c 10 -p 10 -d 10 https://localhost:3030/');
    expect(section).toContain('`-c 1` can never pair');
  });
});

describe('README reference', () => {
  it('lists every WebSocket close code a client can see: pairup’s own, ws’s (1002, 1007, 1009) and 1006 (cut)', async () => {
    const text = await readme();
    const table = text.slice(text.indexOf('Close codes:'), text.indexOf('\n\n', text.indexOf('| code | meaning |')));
    const listed = [...table.matchAll(/^\| (\d{4}) \|/gm)].map((m) => Number(m[1]));
    const sent = [...Object.values(CLOSE_CODES), 1002, 1006, 1007, 1009];
    expect(listed).toEqual([...new Set(sent)].sort((a, b) => a - b));
  });
});

describe('certs/', () => {
  it('is in the repository with a README, and the keys generated there are ignored by git', async () => {
    const about = await readFile(new URL('../certs/README.md', import.meta.url), 'utf8');
    expect(about).toContain('dev-cert.pem');
    expect(about).toContain('TLS_CERT');
    const ignored = (path: string) => spawnSync('git', ['check-ignore', '-q', path], { cwd: ROOT }).status;
    expect([ignored('certs/dev-key.pem'), ignored('certs/dev-cert.pem'), ignored('certs/README.md')]).toEqual([0, 0, 1]);
  });
});
