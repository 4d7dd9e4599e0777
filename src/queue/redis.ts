/**
 * The queue in Redis, shared by every process that uses the same Redis and key prefix. Each step of
 * the seam is one Lua script, run atomically by Redis: the pop-or-push, the same-connection rule and
 * codes are decided there, never by a read in Node followed by a write.
 *
 * Keys, for a room R under prefix P. The braces make every key of a room hash to one slot, so that a
 * room lives on one node of a Redis Cluster and its scripts touch nothing else:
 *   P{R}:q       list of waiting ids, oldest first
 *   P{R}:w       hash id → `DEADLINE\nCONNECTION\nWAITER` (the deadline Redis gave it, the connection, then
 *                the waiter's JSON, which no script ever decodes: a client's meta cannot break a room's step)
 *   P{R}:claims  hash id → claim (JSON: the waiter, the arrival that claimed it, whether it marked the code used,
 *                whether its owner committed)
 *   P{R}:used    exists while a code is used (its time to live is CODE_TTL_MS)
 *   P{R}:g:ID    group ID's record (JSON: open, committed or aborted; whether it used the code; the
 *                members nobody has put back or dropped yet, each as it was stored), in a group's room
 *                alone (a room of size N > 2, whose key names N: `pool:NAME#N`); there a waiter is stored
 *                as `DEADLINE\nCONNECTION\nQUEUED_AT\nWAITER`, for the fill rule
 *   Plimit:{K}   sorted set of the ids waiting under limit key K (an address), scored by deadline:
 *                MAX_WAITING_PER_IP, shared by every process, in the key's own slot
 *   Pcodes       sorted set of the rooms of used codes, scored by when they may be used again: past
 *                MAX_REMEMBERED_CODES, the oldest `used` keys are deleted early (as in memory)
 *
 * Nothing here outlives what it describes. A waiter whose process died (kill -9) is never handed
 * out: its claim must be confirmed by that process, which cannot (the arrival's offer finds nobody
 * listening). It is dropped by the first join that reaches it, or once past its deadline (plus
 * a grace, {@link GRACE_MS}) by any join of its room; and the keys of a room nobody joins again expire on
 * their own GRACE_MS after the last waiter's deadline. A limit entry lapses at its deadline.
 */
import { scripts, type RedisCommands } from './redis-scripts.js';
import {
  MAX_REMEMBERED_CODES,
  type FillRequest,
  type GatherRequest,
  type GatherStep,
  type GroupClaim,
  type JoinRequest,
  type JoinStep,
  type MatchQueue,
  type QueueRefusal,
  type Waiter,
} from './seam.js';

export type { RedisCommands } from './redis-scripts.js';

/** How long past its deadline a waiter (its limit entry, its room's keys) may linger in Redis, by default. */
export const GRACE_MS = 5000;

export interface RedisQueueOptions {
  /** Namespaces every key, so that several deployments or test runs share one Redis. Default `pairup:`. */
  readonly prefix?: string;
  /** Told of a failure nobody waits on (a limit entry that could not be removed: it lapses on its own). */
  readonly onError?: (error: unknown) => void;
  /** How long past its deadline a waiter is kept; default {@link GRACE_MS}. */
  readonly graceMs?: number;
  /** Most used codes remembered; default {@link MAX_REMEMBERED_CODES}. */
  readonly maxRememberedCodes?: number;
}

export class RedisQueue implements MatchQueue {
  readonly #client: RedisCommands;
  readonly #prefix: string;
  readonly #onError: (error: unknown) => void;
  readonly #grace: number;
  readonly #maxCodes: number;

  constructor(client: RedisCommands, options: RedisQueueOptions = {}) {
    this.#client = client;
    this.#prefix = options.prefix ?? 'pairup:';
    this.#onError = options.onError ?? (() => undefined);
    this.#grace = options.graceMs ?? GRACE_MS;
    this.#maxCodes = options.maxRememberedCodes ?? MAX_REMEMBERED_CODES;
  }

  #keys(room: string): [q: string, w: string, claims: string, used: string] {
    const base = `${this.#prefix}{${room}}`;
    return [`${base}:q`, `${base}:w`, `${base}:claims`, `${base}:used`];
  }

  /** A group room's keys, with the record of group `groupId` in place of pairs' claims. */
  #groupKeys(room: string, groupId: string): [q: string, w: string, group: string, used: string] {
    const base = `${this.#prefix}{${room}}`;
    return [`${base}:q`, `${base}:w`, `${base}:g:${groupId}`, `${base}:used`];
  }

  #limitKey(waiter: Waiter): string {
    return `${this.#prefix}limit:{${waiter.limitKey}}`;
  }

  /** Takes the waiter out of its limit key's count (it lapses on its own if this fails). */
  #release(waiter: Waiter): void {
    this.#client.zRem(this.#limitKey(waiter), waiter.id).catch(this.#onError);
  }

  async join(request: JoinRequest): Promise<JoinStep> {
    const { waiter } = request;
    // The limit is counted in its own slot, before the room is joined: a waiter is counted before
    // anyone can claim it. The count is given back if the join does not queue it.
    let refusal: QueueRefusal | '' = request.mayWait ? '' : 'full';
    const counted = refusal === '' && request.maxPerKey > 0;
    if (counted) {
      const room = await scripts.reserve.run(
        this.#client,
        [this.#limitKey(waiter)],
        [waiter.id, String(request.maxPerKey), String(Math.ceil(request.waitMs) + this.#grace), ''],
      );
      if (room !== 1) refusal = 'ip_limit';
    }
    const reply = (await scripts.join.run(this.#client, this.#keys(waiter.room), [
      JSON.stringify(waiter),
      waiter.id,
      waiter.connection,
      request.byCode ? '1' : '0',
      refusal,
      String(Math.max(1, Math.round(request.codeTtlMs))),
      String(Math.max(1, Math.ceil(request.waitMs))),
      String(this.#grace),
    ])) as [string, string?];
    const [kind, detail = ''] = reply;
    if (counted && refusal === '' && kind !== 'queued') this.#release(waiter);
    if (kind === 'queued') return { kind };
    if (kind === 'refused') return { kind, refusal: detail as QueueRefusal };
    // After the deadline and the connection (Redis's own bookkeeping), the waiter as it was given.
    const peer = JSON.parse(detail.slice(detail.indexOf('\n', detail.indexOf('\n') + 1) + 1)) as Waiter;
    // A claimed waiter no longer waits: it no longer counts (an abort that puts it back counts it again).
    this.#release(peer);
    if (request.byCode) this.#remember(waiter.room, request.codeTtlMs);
    return { kind: 'claimed', peer };
  }

  /**
   * Counts the code just used among every process's, and forgets the oldest past the bound. Not on
   * the pairing's path: a code forgotten a moment late (or its count lost with Redis) is harmless.
   */
  #remember(room: string, ttlMs: number): void {
    scripts.remember
      .run(this.#client, [`${this.#prefix}codes`], [room, String(Math.max(1, Math.round(ttlMs))), String(this.#maxCodes)])
      .then((forgotten) => Promise.all((forgotten as string[]).map((old) => this.#client.del(this.#keys(old)[3]))))
      .catch(this.#onError);
  }

  async commit(peer: Waiter, claimer: string): Promise<boolean> {
    return (await scripts.commit.run(this.#client, [this.#keys(peer.room)[2]], [peer.id, claimer])) === 1;
  }

  async confirm(peer: Waiter): Promise<void> {
    await scripts.confirm.run(this.#client, [this.#keys(peer.room)[2]], [peer.id]);
  }

  async abort(peer: Waiter, stillThere: boolean): Promise<'aborted' | 'matched'> {
    const result = await scripts.abort.run(this.#client, this.#keys(peer.room), [peer.id, stillThere ? '1' : '0', String(this.#grace)]);
    if (result === 'matched' || result === 'aborted') return result;
    // Put back in its room: counted again, until its deadline.
    await scripts.reserve.run(this.#client, [this.#limitKey(peer)], [peer.id, '0', '0', String(Number(result) + this.#grace)]);
    return 'aborted';
  }

  async cancel(waiter: Waiter): Promise<boolean> {
    const [q, w] = this.#keys(waiter.room);
    const cancelled = (await scripts.cancel.run(this.#client, [q, w], [waiter.id])) === 1;
    if (cancelled) this.#release(waiter);
    return cancelled;
  }

  async gather(request: GatherRequest): Promise<GatherStep> {
    const { waiter } = request;
    let refusal: QueueRefusal | '' = request.mayWait ? '' : 'full';
    const counted = refusal === '' && request.maxPerKey > 0;
    if (counted) {
      const room = await scripts.reserve.run(
        this.#client,
        [this.#limitKey(waiter)],
        [waiter.id, String(request.maxPerKey), String(Math.ceil(request.waitMs) + this.#grace), ''],
      );
      if (room !== 1) refusal = 'ip_limit';
    }
    const reply = (await scripts.gather.run(this.#client, this.#groupKeys(waiter.room, request.groupId), [
      JSON.stringify(waiter),
      waiter.id,
      waiter.connection,
      request.byCode ? '1' : '0',
      refusal,
      String(Math.max(1, Math.round(request.codeTtlMs))),
      String(Math.max(1, Math.ceil(request.waitMs))),
      String(this.#grace),
      String(request.size),
      String(request.min),
      String(Math.max(0, Math.round(request.fillWaitMs))),
    ])) as string[];
    const [kind, detail = ''] = reply;
    if (counted && refusal === '' && kind !== 'queued') this.#release(waiter);
    if (kind === 'queued') return { kind };
    if (kind === 'refused') return { kind, refusal: detail as QueueRefusal };
    const group = this.#claimed(request.groupId, reply);
    if (request.byCode) this.#remember(waiter.room, request.codeTtlMs);
    return { kind: 'claimed', group };
  }

  async fill(waiter: Waiter, request: FillRequest): Promise<GroupClaim | undefined> {
    const reply = (await scripts.fill.run(this.#client, this.#groupKeys(waiter.room, request.groupId), [
      waiter.id,
      String(request.size),
      String(request.min),
      request.byCode ? '1' : '0',
      String(Math.max(1, Math.round(request.codeTtlMs))),
      String(this.#grace),
    ])) as string[];
    if (reply.length === 0) return undefined;
    const group = this.#claimed(request.groupId, reply);
    if (request.byCode) this.#remember(waiter.room, request.codeTtlMs);
    return group;
  }

  /** The members of a claimed group from the script's reply (after 'claimed', each as stored), no longer counted as waiting. */
  #claimed(groupId: string, reply: readonly string[]): GroupClaim {
    const members = reply.slice(1).map((stored) => {
      // After the deadline, the connection and when it was queued, the waiter as it was given.
      let at = -1;
      for (let field = 0; field < 3; field++) at = stored.indexOf('\n', at + 1);
      return JSON.parse(stored.slice(at + 1)) as Waiter;
    });
    for (const member of members) this.#release(member);
    return { groupId, members };
  }

  async commitGroup(group: GroupClaim): Promise<boolean> {
    const room = (group.members[0] as Waiter).room;
    return (await scripts.commitGroup.run(this.#client, [this.#groupKeys(room, group.groupId)[2]], [group.groupId])) === 1;
  }

  /** A committed record is kept until it lapses (a minute): a member's process that missed the word asks it. */
  confirmGroup(): Promise<void> {
    return Promise.resolve();
  }

  async release(group: GroupClaim, back: readonly Waiter[], drop: readonly Waiter[]): Promise<'aborted' | 'matched'> {
    const room = (group.members[0] as Waiter).room;
    const backIds = new Set(back.map((member) => member.id));
    const decided = [...back, ...drop].map((member) => member.id);
    // Oldest first, as the group lists them: the script puts them back in that order.
    const args = [group.groupId, String(this.#grace)];
    for (const member of group.members) if (decided.includes(member.id)) args.push(member.id, backIds.has(member.id) ? '1' : '0');
    const reply = (await scripts.release.run(this.#client, this.#groupKeys(room, group.groupId), args)) as string[];
    if (reply[0] === 'matched') return 'matched';
    // Put back in their room: counted again, until their deadlines.
    for (let i = 1; i + 1 < reply.length; i += 2) {
      const member = group.members.find((m) => m.id === reply[i]);
      if (member !== undefined) await scripts.reserve.run(this.#client, [this.#limitKey(member)], [member.id, '0', '0', String(Number(reply[i + 1]) + this.#grace)]);
    }
    return 'aborted';
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
