/**
 * The words the lobby, the routes and the metrics share: a leaf module, imported by all of them,
 * importing nothing but the queue's plain-data types.
 */
import type { AddressSource } from '../protocol/schemas.js';
import type { QueueRefusal, Waiter } from '../queue/seam.js';

/**
 * Where a client waits: a pool (anyone in it may be its partner) or a rendezvous code (only the one
 * other client presenting the same code may be). Pools and codes are separate namespaces.
 */
export interface Room {
  readonly kind: 'pool' | 'code';
  readonly name: string;
  /** The app whose key the client gave (APP_KEYS_FILE): each app's pools and codes are its own. */
  readonly app?: string;
  /** Members of the group asked for, when more than two (a pair leaves it out). */
  readonly size?: number;
  /** Fewest members its group may form with after FILL_WAIT_MS, when fewer than `size`. */
  readonly min?: number;
}

/**
 * The queue's key for a room: pools and codes never share one, nor do two apps (an app's keys start
 * `app:`, which no room without an app does).
 */
export function roomKey(room: Room): string {
  const key = room.app === undefined ? `${room.kind}:${room.name}` : `app:${room.app}:${room.kind}:${room.name}`;
  if (room.size === undefined) return key;
  // A group's room names its size (and min): `#` is in no pool, code or app name.
  return room.min === undefined ? `${key}#${room.size}` : `${key}#${room.size}/${room.min}`;
}

/**
 * The room of a join that asked for `size` members (and maybe `min`): a pair's room as it is (size 2
 * or none), else a group's, with its min when the group may form with fewer.
 */
export function groupRoom(room: Room, size: number | undefined, min: number | undefined): Room {
  if (size === undefined || size === 2) return room;
  return min === undefined || min === size ? { ...room, size } : { ...room, size, min };
}

/** What a client is asking for, as the route has validated it. */
export interface JoinRequest {
  readonly room: Room;
  /** What MAX_WAITING_PER_IP counts: the client's IP, or its IPv6 network (net/address.ts limitKey). */
  readonly limitKey: string;
  /** Observed address as shown to the partner (`host:port`). */
  readonly address: string;
  /**
   * Where the address came from: the connection itself, or X-Forwarded-For from a trusted proxy
   * (then the port is the proxy's connection's, not the client's).
   */
  readonly via: AddressSource;
  /** The client's connection, named: two requests on one connection are never paired. */
  readonly connection: string;
  readonly meta: Record<string, unknown> | undefined;
  readonly timeoutMs: number;
  /** Its client can go on to relay signals to its partner (WebSocket). */
  readonly relay?: true;
  /** Called once if the request waits in its room (nobody was there to pair with). */
  readonly queued?: () => void;
  /**
   * Called if the request ended (its client left, the server closing) while held for a group that
   * was committed first: the other members were answered with it as a member, and may be told it left.
   */
  readonly lateGroup?: (outcome: Extract<Outcome, { kind: 'grouped' }>) => void;
  /** True once the client is known to have gone, even before its close event has run. */
  readonly isGone: () => boolean;
  /** Calls `onGone` when the client goes away; returns the function that stops watching. */
  readonly watch: (onGone: () => void) => () => void;
}

/** What a client learns of its partner. Plain data: the partner may be held by another process. */
export type Partner = Pick<Waiter, 'id' | 'owner' | 'address' | 'via' | 'meta' | 'relay'>;

export type Refusal = QueueRefusal | 'closing';

/** How a ticket ended. Exactly one per ticket; the first to happen wins. */
export type Outcome =
  | {
      readonly kind: 'matched';
      readonly matchId: string;
      /** 32 random bytes, base64url, the same for both partners: for them alone, never logged. */
      readonly secret: string;
      readonly peer: Partner;
      /** True for the partner that was waiting, false for the one whose arrival made the match. */
      readonly initiator: boolean;
      readonly waitedMs: number;
    }
  | {
      /** A group of more than two formed: every member confirmed still there, then committed once. */
      readonly kind: 'grouped';
      readonly matchId: string;
      /** One secret for the whole group. */
      readonly secret: string;
      /** Every member, this one included, in index order: the longest waiting first. */
      readonly members: readonly Partner[];
      /** This member's place in `members`. */
      readonly index: number;
      readonly waitedMs: number;
    }
  | { readonly kind: 'timeout'; readonly waitedMs: number }
  | { readonly kind: 'gone' }
  | { readonly kind: 'shutdown' }
  /** Turned away before it could wait; the route answers the refusal's error. */
  | { readonly kind: 'refused'; readonly refusal: Refusal }
  /** The queue backend failed; the route answers 500. */
  | { readonly kind: 'failed'; readonly error: unknown };

export interface Limits {
  /** Most clients this process holds waiting (a per-process bound: it protects this process's memory). */
  readonly maxWaiting: number;
  /** 0: no per-IP limit. */
  readonly maxWaitingPerIp: number;
  /** How long a code that made a match stays used (refused to everyone). */
  readonly codeTtlMs: number;
  /** How long the oldest of a group's waiters waits before a group of `min` forms (FILL_WAIT_MS); default 10 s. */
  readonly fillWaitMs?: number;
}

/** What the lobby tells whoever measures it (metrics). Called synchronously; must not throw. */
export interface LobbyObserver {
  /** A client was queued to wait for a partner. */
  queued(room: Room): void;
  /** A client's request ended; `wasQueued` when it had been waiting in its room. */
  settled(room: Room, outcome: Outcome, wasQueued: boolean): void;
}
