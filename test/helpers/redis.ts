import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'redis';
import { freePort, runCommand } from './process.js';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  readonly child: ChildProcess;
  /** Stops it (by its PID) and resolves once it has exited. */
  stop(): Promise<void>;
}

/** A redis-server of the test's own on a free loopback port, keeping nothing on disk. */
export async function startRedis(onPort?: number, extra: readonly string[] = []): Promise<RedisServer> {
  if (spawnSync('sh', ['-c', 'command -v redis-server']).status !== 0) {
    throw new Error('redis-server is not installed: apt-get install redis-server');
  }
  const port = onPort ?? (await freePort());
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extra], {
    stdio: 'ignore',
  });
  const deadline = Date.now() + 5000;
  while (!(await answers(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not start on port ${port}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** Whether something accepts connections on the port. */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

export interface RedisCluster {
  /** One node's URL: the others are found from it. */
  readonly url: string;
  readonly nodes: readonly RedisServer[];
  stop(): Promise<void>;
}

/**
 * A Redis Cluster of three masters (no replicas) on free loopback ports, made with
 * `redis-cli --cluster create`; each node's cluster bus is its port + 10000.
 */
export async function startRedisCluster(): Promise<RedisCluster> {
  if (spawnSync('sh', ['-c', 'command -v redis-cli']).status !== 0) throw new Error('redis-cli is not installed: apt-get install redis-tools');
  const dir = mkdtempSync(join(tmpdir(), 'pairup-cluster-'));
  const nodes: RedisServer[] = [];
  try {
    for (let i = 0; i < 3; i++) nodes.push(await startRedis(await clusterPort(nodes), ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${i}.conf`), '--dir', dir]));
    const created = await runCommand('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes']);
    if (created.code !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
    const deadline = Date.now() + 10_000;
    for (const node of nodes) {
      for (;;) {
        const info = await runCommand('redis-cli', ['-p', String(node.port), 'cluster', 'info']);
        if (info.stdout.includes('cluster_state:ok')) break;
        if (Date.now() > deadline) throw new Error(`Redis Cluster node ${node.port} did not become ready: ${info.stdout}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  } catch (error) {
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const [first] = nodes as [RedisServer];
  return {
    url: first.url,
    nodes,
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A free port whose cluster bus port (+10000) is free too, and not one of the nodes' already. */
async function clusterPort(taken: readonly RedisServer[]): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 30_000);
    if (taken.some((n) => Math.abs(n.port - port) < 2 || Math.abs(n.port + 10_000 - port) < 2)) continue;
    if ((await isFree(port)) && (await isFree(port + 10_000))) return port;
  }
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/** Every key under `prefix` on these Redis servers (one, or every node of a cluster), sorted. */
export async function keysOn(urls: readonly string[], prefix: string): Promise<string[]> {
  const found: string[] = [];
  for (const url of urls) {
    const node = createClient({ url });
    await node.connect();
    for await (const keys of node.scanIterator({ MATCH: `${prefix}*`, COUNT: 100 })) found.push(...keys);
    await node.close();
  }
  return found.sort();
}
