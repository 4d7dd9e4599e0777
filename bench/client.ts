import type { ClientHttp2Session } from 'node:http2';
import { request, type Agent } from 'node:https';

export interface Answer {
  readonly status: number;
  readonly body: string;
}

export interface H1Options {
  readonly ca: string;
  /** false: a connection of its own, closed afterwards, no TLS session reuse. */
  readonly agent: Agent | false;
  readonly signal?: AbortSignal;
  /** Called once the request's TLS connection is up. */
  readonly onConnected?: () => void;
}

/** One HTTP/1.1 GET asking for JSON, the whole body read. */
export function h1Get(origin: URL, path: string, options: H1Options): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: origin.hostname,
        port: origin.port,
        path,
        ca: options.ca,
        agent: options.agent,
        signal: options.signal,
        headers: { accept: 'application/json', ...(options.agent === false ? { connection: 'close' } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    const { onConnected } = options;
    if (onConnected !== undefined) req.once('socket', (socket) => socket.once('secureConnect', onConnected));
    req.on('error', reject);
    req.end();
  });
}

/** One GET over an HTTP/2 session, asking for JSON; `signal` resets the stream. */
export function h2Get(session: ClientHttp2Session, path: string, signal?: AbortSignal): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, accept: 'application/json' }, { signal });
    let status = 0;
    const chunks: Buffer[] = [];
    stream.on('response', (headers) => {
      status = Number(headers[':status']);
    });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString('utf8') }));
    stream.on('error', reject);
  });
}

/** Waiters a server still holds (GET /healthz), 0 expected after a workload, once aborted clients have been noticed. */
export async function leftWaiting(origin: string, ca: string): Promise<number> {
  let waiting = Number.NaN;
  for (let i = 0; i < 40; i++) {
    const { body } = await h1Get(new URL(origin), '/healthz', { ca, agent: false });
    waiting = (JSON.parse(body) as { waiting: number }).waiting;
    if (waiting === 0) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return waiting;
}
