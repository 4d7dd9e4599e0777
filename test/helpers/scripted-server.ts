import { createSecureServer, type Http2SecureServer, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Match } from '../../src/protocol/index.js';
import { testCertificate } from './server.js';

/** A well-formed match, as a scripted server answers it. */
export const SAMPLE_MATCH: Match = {
  matchId: '00000000-0000-4000-8000-000000000000',
  code: 'c',
  secret: 'A'.repeat(43),
  self: '127.0.0.1:1',
  peer: '127.0.0.1:2',
  via: 'socket',
  portIsSource: true,
  initiator: true,
  waitedMs: 5,
  iceServers: [],
  peerMeta: null,
};

/** One scripted answer: status, JSON body (or raw text), headers, and how long to hold it. */
export interface Scripted {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Record<string, string>;
  readonly holdMs?: number;
  /** After the body, this many more bytes of filler, as fast as the client takes them. */
  readonly floodBytes?: number;
  /** Send the body one byte at a time, this many milliseconds apart. */
  readonly dripMs?: number;
}

export interface Seen {
  readonly method: string;
  readonly httpVersion: string;
  readonly body: Record<string, unknown>;
}

/** A stand-in pairup server that answers from a script and records what it was sent. */
export class ScriptedServer {
  readonly seen: Seen[] = [];
  script: Scripted[] = [];
  /** Answer to give once the script has run out (default: a 500). */
  repeat: Scripted | undefined;
  closedEarly = 0;
  #server: Http2SecureServer | undefined;
  readonly #sockets = new Set<TLSSocket>();

  async start(): Promise<string> {
    const { cert, key } = await testCertificate();
    this.#server = createSecureServer({ cert, key, allowHTTP1: true }, (req, res) => void this.#answer(req, res));
    this.#server.on('secureConnection', (socket: TLSSocket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, '127.0.0.1', resolve));
    return `https://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async #answer(req: Http2ServerRequest, res: Http2ServerResponse): Promise<void> {
    let text = '';
    for await (const chunk of req) text += String(chunk);
    this.seen.push({ method: req.method, httpVersion: req.httpVersion, body: JSON.parse(text) as Record<string, unknown> });
    const next = this.script.shift() ?? this.repeat ?? { status: 500, body: { error: 'script_ended', message: 'script ended' } };
    if (next.holdMs !== undefined) await new Promise((resolve) => setTimeout(resolve, next.holdMs));
    if (res.stream.destroyed) {
      this.closedEarly++;
      return;
    }
    const body = typeof next.body === 'string' ? next.body : JSON.stringify(next.body);
    const raw = typeof next.body === 'string';
    // Read afresh each time: the client may go at any await.
    const gone = (): boolean => res.stream.destroyed;
    res.writeHead(next.status, { 'content-type': raw ? 'text/plain' : 'application/json', ...next.headers });
    res.stream.on('error', () => undefined);
    if (next.dripMs !== undefined) {
      for (const byte of body) {
        if (gone()) return;
        res.write(byte);
        await new Promise((resolve) => setTimeout(resolve, next.dripMs));
      }
    } else {
      res.write(body);
    }
    const filler = Buffer.alloc(64 * 1024, 0x20);
    for (let sent = 0; sent < (next.floodBytes ?? 0) && !gone(); sent += filler.length) {
      if (!res.write(filler)) await new Promise((resolve) => res.stream.once('drain', resolve).once('close', resolve));
    }
    if (!gone()) res.end();
  }

  close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    return new Promise((resolve) => this.#server?.close(() => resolve()));
  }
}
