import { WebSocket } from 'ws';

/** A test's WebSocket client: every message it received, in order, and how it closed. */
export interface TestSocket {
  readonly socket: WebSocket;
  readonly received: Record<string, unknown>[];
  /** Resolves with the next message not yet taken by `next` (rejects after `ms`). */
  next(ms?: number): Promise<Record<string, unknown>>;
  send(message: unknown): void;
  /** The close code the client saw (1006: no close frame), once closed. */
  readonly closed: Promise<number>;
}

/** Opens `origin`/ws (wss://), trusting `ca`; resolves once open. */
export async function openSocket(origin: string, ca: string, options: { readonly headers?: Record<string, string>; readonly query?: string } = {}): Promise<TestSocket> {
  const socket = new WebSocket(`${origin.replace(/^https:/, 'wss:')}/ws${options.query ?? ''}`, { ca, ...(options.headers === undefined ? {} : { headers: options.headers }) });
  const received: Record<string, unknown>[] = [];
  let taken = 0;
  const waiting: (() => void)[] = [];
  socket.on('message', (data) => {
    received.push(JSON.parse((data as Buffer).toString('utf8')) as Record<string, unknown>);
    for (const wake of waiting.splice(0)) wake();
  });
  const closed = new Promise<number>((resolve) => socket.once('close', (code) => {
    for (const wake of waiting.splice(0)) wake();
    resolve(code);
  }));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  socket.on('error', () => undefined);
  return {
    socket,
    received,
    closed,
    send: (message) => socket.send(typeof message === 'string' ? message : JSON.stringify(message)),
    async next(ms = 5000) {
      const deadline = Date.now() + ms;
      while (received.length <= taken) {
        if (socket.readyState === socket.CLOSED) throw new Error(`closed with no message left (received ${JSON.stringify(received)})`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no message within ${ms} ms (received ${JSON.stringify(received)})`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiting.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return received[taken++] as Record<string, unknown>;
    },
  };
}
