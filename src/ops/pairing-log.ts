import type { FastifyBaseLogger } from 'fastify';
import pino from 'pino';
import type { Room } from '../core/types.js';

export interface Pairing {
  readonly room: Room;
  readonly matchId: string;
  /** The partner that was waiting. */
  readonly waiter: string;
  /** The partner whose arrival made the match. */
  readonly arrival: string;
  /** The waiter was held by another process (a shared backend). */
  readonly across: boolean;
}

interface PinoInternals extends Pick<pino.Logger, 'isLevelEnabled'> {
  readonly [pino.symbols.streamSym]: { write(line: string): unknown };
  readonly [pino.symbols.chindingsSym]: string;
  readonly [pino.symbols.timeSym]: () => string;
  readonly [pino.symbols.lsCacheSym]: Readonly<Record<number, string>>;
}

const INFO = 30;

/**
 * The one line a pairing is logged with, at info: the same line pino writes (its level, time and
 * bindings, then the fields, then `msg`), to the same destination, but put together directly.
 * Under the storm, pino's general-purpose formatting of this one object was a large share of the
 * server's CPU per answer (figures: bench/README.md). A code is the partners' shared secret: the line
 * says a code was used, never which.
 */
export function pairingLog(logger: FastifyBaseLogger): (pairing: Pairing) => void {
  const internals = logger as unknown as PinoInternals;
  const stream = internals[pino.symbols.streamSym];
  const prefix = internals[pino.symbols.lsCacheSym][INFO] ?? `{"level":${INFO}`;
  const time = internals[pino.symbols.timeSym];
  const bindings = internals[pino.symbols.chindingsSym];
  return ({ room, matchId, waiter, arrival, across }) => {
    if (!internals.isLevelEnabled('info')) return;
    const where = room.kind === 'pool' ? `"pool":${JSON.stringify(room.name)}` : '"room":"code"';
    stream.write(
      `${prefix}${time()}${bindings},${where},"matchId":${JSON.stringify(matchId)},"waiter":${JSON.stringify(waiter)},` +
        `"arrival":${JSON.stringify(arrival)}${across ? ',"across":true' : ''},"msg":"paired"}\n`,
    );
  };
}

/**
 * The one line a group is logged with, at info, by its first member's request (every process agrees
 * which that is): the room, the group's size and its members' addresses by index, and `across`
 * when another process held one of them. Groups are few beside pairs: pino writes it as it is.
 */
export function logGroup(
  logger: FastifyBaseLogger,
  room: Room,
  group: { readonly matchId: string; readonly members: readonly { readonly address: string; readonly owner: string }[] },
  owner: string,
): void {
  const where = room.kind === 'pool' ? { pool: room.name } : { room: 'code' };
  const across = group.members.some((member) => member.owner !== owner);
  logger.info({ ...where, matchId: group.matchId, size: group.members.length, members: group.members.map((m) => m.address), ...(across ? { across } : {}) }, 'grouped');
}
