/**
 * What a new user meets first: the README's examples can be run in order, and the layout it
 * describes is there in a fresh clone.
 */
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const readme = () => readFile(new URL('../README.md', import.meta.url), 'utf8');

describe('README examples', () => {
  it('give the CLI, findPeer() and the UDP example codes of their own, so running them in order works', async () => {
    const text = await readme();
    const section = text.slice(text.indexOf('## Client library and command line'), text.indexOf('## Endpoints'));
    const codes = [...section.matchAll(/--code ([a-z0-9-]+)|code: '([a-z0-9-]+)'/g)].map((m) => m[1] ?? m[2]);
    expect(codes).toEqual(['purple-otter-42', 'amber-lynx-17', 'quiet-heron-63']);
    const example = await readFile(new URL('../examples/udp-handshake.ts', import.meta.url), 'utf8');
    expect(example).toContain('--code quiet-heron-63');
  });

  it('has a Load testing section with the autocannon commands, -c 1 and pipelining explained', async () => {
    const text = await readme();
    const section = text.slice(text.indexOf('## Load testing'), text.indexOf('## Benchmarks'));
    expect(section).toContain('npx autocannon -c 100 -d 10 https://localhost:3030/');
    expect(section).toContain('npx autocannon -c 10 -p 10 -d 10 https://localhost:3030/');
    expect(section).toContain('`-c 1` can never pair');
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
