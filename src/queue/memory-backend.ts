/** The default backend: everything in this process's memory, nothing shared with another process. */
import { randomBytes } from 'node:crypto';
import type { Backend } from './backend.js';
import { MemoryCounter } from './memory-counter.js';
import { MemoryLedger } from './memory-ledger.js';
import { MemoryQueue } from './memory.js';

export function openMemoryBackend(): Backend {
  return {
    queue: new MemoryQueue(),
    healthy: true,
    ledger: new MemoryLedger(),
    counter: new MemoryCounter(),
    secretKey: randomBytes(32),
    start: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
}
