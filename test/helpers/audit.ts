import type { Lobby } from '../../src/core/lobby.js';
import type { MemoryQueue } from '../../src/queue/memory.js';

/**
 * Checks the server's promise to its clients against its live state: in no room do two live waiters
 * from different connections wait together (they should have been paired), and no code has two
 * waiters. Waiters whose client is gone but whose close event has not run yet are left out: the next
 * arrival drops them. Returns the violations found, for stress tests to call after every event.
 */
export function audit(queue: Pick<MemoryQueue, 'waiters'>, lobby: Pick<Lobby, 'ticket'>): string[] {
  const connectionByRoom = new Map<string, string>();
  const violations: string[] = [];
  for (const waiter of queue.waiters()) {
    if (lobby.ticket(waiter.id)?.isGone() !== false) continue;
    const first = connectionByRoom.get(waiter.room);
    if (first === undefined) connectionByRoom.set(waiter.room, waiter.connection);
    else if (first !== waiter.connection || waiter.room.startsWith('code:')) {
      violations.push(`${waiter.room}: ${waiter.address} waits beside another live client`);
    }
  }
  return violations;
}
