/**
 * The queue in Redis, shared by every process that uses the same Redis and key prefix. Each step of
 * the seam is one Lua script, run atomically by Redis: the pop-or-push, the same-connection rule and
 * codes are decided there, never by a read in Node followed by a write.
 *
 * Keys, for a room R under prefix P. The braces make every key of a room hash to one slot, so that a
 * room lives on one node of a Redis Cluster and its scripts touch nothing else:
 *   P{R}:q       list of waiting ids, oldest first
 *   P{R}:w       hash id → waiter (JSON, with the deadline Redis gave it)
 *   P{R}:claims  hash id → claim (JSON: the waiter, whether it marked the code used, whether its owner committed)
 *   P{R}:used    exists while a code is used (its time to live is CODE_TTL_MS)
 *   Plimit:{K}   sorted set of the ids waiting under limit key K (an address), scored by deadline:
 *                MAX_WAITING_PER_IP, shared by every process, in the key's own slot
 *
 * Nothing here outlives what it describes. A waiter whose process died (kill -9) is never handed
 * out: its claim must be confirmed by that process, which cannot (the arrival's offer finds nobody
 * listening). It is dropped by the first join that reaches it, or once past its deadline (plus
 * a grace, {@link GRACE_MS}) by any join of its room; and the keys of a room nobody joins again expire on
 * their own GRACE_MS after the last waiter's deadline. A limit entry lapses at its deadline.
 */
import { createHash } from 'node:crypto';
import { BackendUnavailableError, type JoinRequest, type JoinStep, type MatchQueue, type QueueRefusal, type Waiter } from './seam.js';

/**
 * What the queue needs of a node-redis client: a single Redis (`createClient`) and a Redis Cluster
 * (`createCluster`) both have it, and route each call by its first key.
 */
export interface RedisCommands {
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  zRem(key: string, member: string): Promise<unknown>;
}

/** How long past its deadline a waiter (its limit entry, its room's keys) may linger in Redis, by default. */
export const GRACE_MS = 5000;
/** How long the claims of a room are kept after the last one was made: far longer than any confirmation takes. */
const CLAIMS_TTL_MS = 60_000;

/** Redis's clock in milliseconds, in a script (Redis 7 replicates a script's effects, so TIME is allowed). */
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/** Extends the keys' time to live to at least ttl milliseconds (never shortens it). */
const KEEP = `local function keep(ttl, ...)
  for _, key in ipairs({...}) do
    if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
  end
end`;

const JOIN = `${NOW}
${KEEP}
local q, w, claims, used = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local record, id, connection = ARGV[1], ARGV[2], ARGV[3]
local byCode, refusal, codeTtlMs, waitMs = ARGV[4] == '1', ARGV[5], ARGV[6], tonumber(ARGV[7])
local grace = tonumber(ARGV[8])
if byCode and redis.call('EXISTS', used) == 1 then return {'refused', 'code_used'} end
local ids = redis.call('LRANGE', q, 0, -1)
for _, candidate in ipairs(ids) do
  local stored = redis.call('HGET', w, candidate)
  local waiter = stored and cjson.decode(stored)
  if not waiter or waiter.deadline + grace < now then
    -- Past its deadline: its process would have taken it out, so that process is gone.
    redis.call('LREM', q, 1, candidate)
    redis.call('HDEL', w, candidate)
  elseif waiter.connection == connection then
    if byCode then return {'refused', 'code_taken'} end
  else
    redis.call('LREM', q, 1, candidate)
    redis.call('HDEL', w, candidate)
    redis.call('HSET', claims, candidate, cjson.encode({waiter = stored, code = byCode, committed = false}))
    redis.call('PEXPIRE', claims, ${CLAIMS_TTL_MS})
    if byCode then redis.call('SET', used, '1', 'PX', codeTtlMs) end
    return {'claimed', stored}
  end
end
if refusal ~= '' then return {'refused', refusal} end
local deadline = now + waitMs
redis.call('RPUSH', q, id)
redis.call('HSET', w, id, '{"deadline":' .. deadline .. ',' .. string.sub(record, 2))
keep(waitMs + grace, q, w)
return {'queued'}
`;

const COMMIT = `
local claim = redis.call('HGET', KEYS[1], ARGV[1])
if not claim then return 0 end
claim = cjson.decode(claim)
claim.committed = true
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(claim))
return 1
`;

const CONFIRM = `return redis.call('HDEL', KEYS[1], ARGV[1])`;

/** Returns 'matched', 'aborted', or (put back) the waiter's deadline: its limit entry is put back too. */
const ABORT = `${NOW}
${KEEP}
local q, w, claims, used = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, stillThere, grace = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3])
local claim = redis.call('HGET', claims, id)
if not claim then return 'aborted' end
redis.call('HDEL', claims, id)
claim = cjson.decode(claim)
if claim.committed then return 'matched' end
if claim.code then redis.call('DEL', used) end
if not stillThere then return 'aborted' end
local deadline = cjson.decode(claim.waiter).deadline
if deadline + grace < now then return 'aborted' end
redis.call('LPUSH', q, id)
redis.call('HSET', w, id, claim.waiter)
keep(deadline + grace - now, q, w)
return tostring(deadline)
`;

const CANCEL = `
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
`;

/**
 * Counts a waiter against its limit key: 0 when the key already has ARGV[2] (> 0) entries that have
 * not lapsed. ARGV[3] is how long the entry lasts (its wait plus GRACE_MS), or ARGV[4] when it lapses.
 */
const RESERVE = `${NOW}
${KEEP}
local key, id, most = KEYS[1], ARGV[1], tonumber(ARGV[2])
local lapses = ARGV[4] ~= '' and tonumber(ARGV[4]) or now + tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
if most > 0 and redis.call('ZCARD', key) >= most then return 0 end
redis.call('ZADD', key, lapses, id)
keep(lapses - now, key)
return 1
`;

class Script {
  readonly #sha: string;
  constructor(readonly source: string) {
    this.#sha = createHash('sha1').update(source).digest('hex');
  }

  /**
   * EVALSHA, falling back to EVAL when Redis does not have the script (a restart, a failover). A
   * Redis that cannot be reached is a BackendUnavailableError.
   */
  async run(client: RedisCommands, keys: string[], args: string[]): Promise<unknown> {
    try {
      try {
        return await client.evalSha(this.#sha, { keys, arguments: args });
      } catch (error) {
        if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error;
        return await client.eval(this.source, { keys, arguments: args });
      }
    } catch (error) {
      throw new BackendUnavailableError({ cause: error });
    }
  }
}

const scripts = {
  join: new Script(JOIN),
  commit: new Script(COMMIT),
  confirm: new Script(CONFIRM),
  abort: new Script(ABORT),
  cancel: new Script(CANCEL),
  reserve: new Script(RESERVE),
};

export interface RedisQueueOptions {
  /** Namespaces every key, so that several deployments or test runs share one Redis. Default `pairup:`. */
  readonly prefix?: string;
  /** Told of a failure nobody waits on (a limit entry that could not be removed: it lapses on its own). */
  readonly onError?: (error: unknown) => void;
  /** How long past its deadline a waiter is kept; default {@link GRACE_MS}. */
  readonly graceMs?: number;
}

export class RedisQueue implements MatchQueue {
  readonly #client: RedisCommands;
  readonly #prefix: string;
  readonly #onError: (error: unknown) => void;
  readonly #grace: number;

  constructor(client: RedisCommands, options: RedisQueueOptions = {}) {
    this.#client = client;
    this.#prefix = options.prefix ?? 'pairup:';
    this.#onError = options.onError ?? (() => undefined);
    this.#grace = options.graceMs ?? GRACE_MS;
  }

  #keys(room: string): [q: string, w: string, claims: string, used: string] {
    const base = `${this.#prefix}{${room}}`;
    return [`${base}:q`, `${base}:w`, `${base}:claims`, `${base}:used`];
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
    const peer = JSON.parse(detail) as Waiter & { deadline?: number };
    delete peer.deadline; // Redis's own bookkeeping, not part of the waiter
    // A claimed waiter no longer waits: it no longer counts (an abort that puts it back counts it again).
    this.#release(peer);
    return { kind: 'claimed', peer };
  }

  async commit(peer: Waiter): Promise<boolean> {
    return (await scripts.commit.run(this.#client, [this.#keys(peer.room)[2]], [peer.id])) === 1;
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

  close(): Promise<void> {
    return Promise.resolve();
  }
}
