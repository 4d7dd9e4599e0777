/**
 * Each match and each group logged and counted once, whichever transport answered it: a pair by its
 * arrival (the partner that is not the initiator), a group by its first member (every process
 * agrees which that is). With app keys, each counts as one pairing of its app; a backend that cannot
 * count one now loses it.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { Outcome, Room } from '../core/types.js';
import type { AppKey } from '../net/app-keys.js';
import { logGroup, pairingLog } from '../ops/pairing-log.js';
import type { Access } from './access.js';

export interface MatchRecord {
  /** A pair this client (observed at `address`) is one of. */
  pair(room: Room, address: string, outcome: Extract<Outcome, { kind: 'matched' }>, app: AppKey | undefined, log: FastifyBaseLogger): void;
  /** A group this client is a member of, answered or not (it may have left as the group was committed). */
  group(room: Room, outcome: Extract<Outcome, { kind: 'grouped' }>, app: AppKey | undefined, log: FastifyBaseLogger): void;
}

/** Records for the process whose lobby is `owner`, on `logger`. */
export function matchRecord(logger: FastifyBaseLogger, owner: string, access: Access | undefined): MatchRecord {
  const logPairing = pairingLog(logger);
  const count = (app: AppKey | undefined, log: FastifyBaseLogger, what: string): void => {
    if (app !== undefined) access?.paired(app).catch((error: unknown) => log.debug({ err: error }, `${what} not counted`));
  };
  return {
    pair(room, address, { initiator, matchId, peer }, app, log) {
      if (initiator) return;
      logPairing({ room, matchId, waiter: peer.address, arrival: address, across: peer.owner !== owner });
      count(app, log, 'pairing');
    },
    group(room, outcome, app, log) {
      if (outcome.index !== 0) return;
      logGroup(logger, room, outcome, owner);
      count(app, log, 'group');
    },
  };
}
