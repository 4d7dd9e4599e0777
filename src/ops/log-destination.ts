import type { Writable } from 'node:stream';
import type { DestinationStream } from 'pino';
import type { LogFormat } from '../config.js';

/** Lines are written once this many characters wait, or every FLUSH_MS (a write per line costs the storm dearly: bench/README.md). */
const BATCH_CHARS = 4096;
const FLUSH_MS = 200;
/** Bytes that may wait to go out to a reader that does not keep up; past them lines are dropped. */
const MAX_QUEUED_BYTES = 4 * 1024 * 1024;
/** At the end of a shutdown, the longest the last lines are waited for. */
export const LOG_DRAIN_MS = 1000;

export interface LogDestinationOptions {
  /** Where the lines go: standard output, for the process's own log. */
  readonly out: Writable;
  /** Turns each line pino wrote into the line written (LOG_FORMAT=pretty); lines go out as they are without it. */
  readonly format?: (line: string) => string;
  /** Told how many lines were dropped, once the reader takes lines again. */
  readonly dropped?: (count: number) => void;
}

/**
 * Where the server's log lines go: batched, bounded, and never in the way of serving or of exiting,
 * whatever the reader of standard output does.
 *
 * pino's own destination writes fd 1 from libuv's thread pool. On a pipe whose reader is alive but
 * stopped reading, that write blocks for good, and the process then cannot exit (Node waits for
 * the pool's threads at exit); on one whose reader is gone, its flush at exit retries the write
 * that failed with EPIPE forever. Either way SIGTERM closed the listeners and the process never
 * ended. `process.stdout` writes a pipe or a socket without blocking (what the kernel does not take
 * waits in memory), and a file or a terminal synchronously, as Node does.
 * - At most MAX_QUEUED_BYTES wait for a reader that does not keep up; later lines are dropped (and
 *   counted, see `dropped`) until it catches up.
 * - A reader that is gone (EPIPE, or any error writing) ends logging: the server serves on.
 * - At exit (the process calls `flush` then), the last batch is handed to the stream without waiting
 *   for it: lines a stopped reader never takes are lost. `drained` gives them a bounded moment first.
 */
export class LogDestination implements DestinationStream {
  readonly write: (line: string) => void;
  readonly #out: Writable;
  readonly #dropped: ((count: number) => void) | undefined;
  readonly #timer: NodeJS.Timeout;
  #batch = '';
  #droppedLines = 0;
  #gone = false;

  constructor(options: LogDestinationOptions) {
    this.#out = options.out;
    this.#dropped = options.dropped;
    const format = options.format;
    // Chosen once: the JSON path pays nothing for the pretty one.
    this.write = format === undefined ? this.#add : (line) => this.#add(format(line));
    this.#out.on('error', this.#onError);
    this.#timer = setInterval(this.flush, FLUSH_MS);
    this.#timer.unref();
  }

  /** Lines dropped since the reader last kept up. */
  get droppedLines(): number {
    return this.#droppedLines;
  }

  readonly #add = (line: string): void => {
    this.#batch += line;
    if (this.#batch.length >= BATCH_CHARS) this.flush();
  };

  /** Hands the waiting lines to the stream (or drops them, see the class). */
  readonly flush = (): void => {
    const batch = this.#batch;
    if (batch === '') return;
    this.#batch = '';
    if (this.#gone) return;
    if (this.#out.writableLength > MAX_QUEUED_BYTES) {
      this.#droppedLines += countLines(batch);
      return;
    }
    const dropped = this.#droppedLines;
    this.#out.write(batch);
    if (dropped === 0) return;
    this.#droppedLines = 0;
    this.#dropped?.(dropped);
  };

  /**
   * Flushes, then resolves once the stream has written everything it was handed, or after `ms`,
   * whichever comes first: true when nothing was left waiting.
   */
  drained(ms: number): Promise<boolean> {
    this.flush();
    const out = this.#out;
    if (this.#gone || out.writableLength === 0) return Promise.resolve(!this.#gone);
    return new Promise((resolve) => {
      const done = (drained: boolean): void => {
        clearTimeout(late);
        out.off('drain', onDrain).off('error', onError);
        resolve(drained);
      };
      const onDrain = (): void => done(true);
      const onError = (): void => done(false);
      const late = setTimeout(() => done(false), ms);
      out.on('drain', onDrain).on('error', onError);
    });
  }

  /** Flushes and stops the timer (the process's own destination lives as long as the process). */
  close(): void {
    this.flush();
    clearInterval(this.#timer);
    this.#out.off('error', this.#onError);
  }

  readonly #onError = (): void => {
    // EPIPE (the reader is gone) or any other: nothing more can be logged, serving goes on.
    this.#gone = true;
    this.#batch = '';
  };
}

/**
 * The log's destination in `format` (pino-pretty is loaded only for `pretty`). Lines dropped for a
 * reader that did not keep up are counted in a line of their own, through `log`, once it does.
 */
export async function openLog(format: LogFormat, out: Writable, log: () => { warn(fields: object, message: string): void }): Promise<LogDestination> {
  const dropped = (count: number): void => log().warn({ dropped: count }, 'log lines dropped: standard output was not read');
  if (format === 'json') return new LogDestination({ out, dropped });
  const { prettyFactory } = await import('pino-pretty');
  // Colours on a terminal only: in a file or a pipe they would be escape codes.
  const colorize = (out as Writable & { isTTY?: boolean }).isTTY === true;
  return new LogDestination({ out, dropped, format: prettyFactory({ colorize, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'hostname' }) });
}

function countLines(text: string): number {
  let lines = 0;
  for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) lines++;
  return lines;
}
