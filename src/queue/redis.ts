/**
 * The queue in Redis, shared by every process that uses the same Redis and key prefix. Each step of
 * the seam is one Lua script, run atomically by Redis: the pop-or-push, the same-connection rule,
 * codes and the per-key counts are decided there, never by a read in Node followed by a write.
 *
 * Keys, for a room R under prefix P (the braces make every key of a room hash to one slot):
 *   P{R}:q       list of waiting ids, oldest first
 *   P{R}:w       hash id → waiter (JSON)
 *   P{R}:claims  hash id → claim (JSON: the waiter, whether it marked the code used, whether its owner committed)
 *   P{R}:used    exists while a code is used (its time to live is CODE_TTL_MS)
 *   Plimits      hash limit key → waiters counted against it
 *   Palive:O     exists while process O is alive (a heartbeat with a time to live): the waiters of a
 *                process that died are never handed out, and are dropped by the next join of their room
 */
import { createHash } from 'node:crypto';
import type { createClient } from 'redis';
import { BackendUnavailableError, type JoinRequest, type JoinStep, type MatchQueue, type QueueRefusal, type Waiter } from './seam.js';

/** What the queue needs of a node-redis client. */
export type RedisClient = Pick<ReturnType<typeof createClient>, 'eval' | 'evalSha' | 'set' | 'del'>;

const JOIN = `
local q, w, claims, used, limits = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local record, id, connection, limitKey = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local byCode, mayWait, maxPerKey, ttlMs = ARGV[5] == '1', ARGV[6] == '1', tonumber(ARGV[7]), ARGV[8]
local alivePrefix = ARGV[9]
if byCode and redis.call('EXISTS', used) == 1 then return {'refused', 'code_used'} end
local ids = redis.call('LRANGE', q, 0, -1)
for _, candidate in ipairs(ids) do
  local stored = redis.call('HGET', w, candidate)
  local waiter = cjson.decode(stored)
  if redis.call('EXISTS', alivePrefix .. waiter.owner) == 0 then
    -- Its process died: nobody can answer it. Dropped, never handed out.
    redis.call('LREM', q, 1, candidate)
    redis.call('HDEL', w, candidate)
    if redis.call('HINCRBY', limits, waiter.limitKey, -1) <= 0 then redis.call('HDEL', limits, waiter.limitKey) end
  elseif waiter.connection == connection then
    if byCode then return {'refused', 'code_taken'} end
  else
    redis.call('LREM', q, 1, candidate)
    redis.call('HDEL', w, candidate)
    if redis.call('HINCRBY', limits, waiter.limitKey, -1) <= 0 then redis.call('HDEL', limits, waiter.limitKey) end
    redis.call('HSET', claims, candidate, cjson.encode({waiter = stored, code = byCode, committed = false}))
    if byCode then redis.call('SET', used, '1', 'PX', ttlMs) end
    return {'claimed', stored}
  end
end
if not mayWait then return {'refused', 'full'} end
if maxPerKey > 0 and tonumber(redis.call('HGET', limits, limitKey) or '0') >= maxPerKey then return {'refused', 'ip_limit'} end
redis.call('RPUSH', q, id)
redis.call('HSET', w, id, record)
redis.call('HINCRBY', limits, limitKey, 1)
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

const ABORT = `
local q, w, claims, used, limits = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, stillThere = ARGV[1], ARGV[2] == '1'
local claim = redis.call('HGET', claims, id)
if not claim then return 'aborted' end
redis.call('HDEL', claims, id)
claim = cjson.decode(claim)
if claim.committed then return 'matched' end
if claim.code then redis.call('DEL', used) end
if stillThere then
  redis.call('LPUSH', q, id)
  redis.call('HSET', w, id, claim.waiter)
  redis.call('HINCRBY', limits, cjson.decode(claim.waiter).limitKey, 1)
end
return 'aborted'
`;

const CANCEL = `
local q, w, limits = KEYS[1], KEYS[2], KEYS[3]
local id, limitKey = ARGV[1], ARGV[2]
if redis.call('LREM', q, 1, id) == 0 then return 0 end
redis.call('HDEL', w, id)
if redis.call('HINCRBY', limits, limitKey, -1) <= 0 then redis.call('HDEL', limits, limitKey) end
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
  async run(client: RedisClient, keys: string[], args: string[]): Promise<unknown> {
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
};

/** How often a process renews its heartbeat, and how long it lives without renewal. */
const HEARTBEAT_MS = 1000;
const HEARTBEAT_TTL_MS = 5000;

export interface RedisQueueOptions {
  /** Namespaces every key, so that several deployments or test runs share one Redis. Default `pairup:`. */
  readonly prefix?: string;
  /** This process's name (the lobby's owner): its heartbeat keeps its waiters eligible. */
  readonly owner: string;
  /** Told of a heartbeat that could not be written (Redis unreachable). */
  readonly onError?: (error: unknown) => void;
}

export class RedisQueue implements MatchQueue {
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #alive: string;
  readonly #heartbeat: NodeJS.Timeout;

  constructor(client: RedisClient, options: RedisQueueOptions) {
    this.#client = client;
    this.#prefix = options.prefix ?? 'pairup:';
    this.#alive = `${this.#prefix}alive:${options.owner}`;
    const beat = (): void => {
      this.#client.set(this.#alive, '1', { PX: HEARTBEAT_TTL_MS }).catch(options.onError ?? (() => undefined));
    };
    beat();
    this.#heartbeat = setInterval(beat, HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /** Resolves once this process's heartbeat is written: its waiters are eligible from then on. */
  ready(): Promise<unknown> {
    return this.#client.set(this.#alive, '1', { PX: HEARTBEAT_TTL_MS });
  }

  #keys(room: string): { q: string; w: string; claims: string; used: string; limits: string } {
    const base = `${this.#prefix}{${room}}`;
    return { q: `${base}:q`, w: `${base}:w`, claims: `${base}:claims`, used: `${base}:used`, limits: `${this.#prefix}limits` };
  }

  async join(request: JoinRequest): Promise<JoinStep> {
    const { waiter } = request;
    const k = this.#keys(waiter.room);
    const reply = (await scripts.join.run(
      this.#client,
      [k.q, k.w, k.claims, k.used, k.limits],
      [
        JSON.stringify(waiter),
        waiter.id,
        waiter.connection,
        waiter.limitKey,
        request.byCode ? '1' : '0',
        request.mayWait ? '1' : '0',
        String(request.maxPerKey),
        String(Math.max(1, Math.round(request.codeTtlMs))),
        `${this.#prefix}alive:`,
      ],
    )) as [string, string?];
    const [kind, detail = ''] = reply;
    if (kind === 'claimed') return { kind, peer: JSON.parse(detail) as Waiter };
    if (kind === 'queued') return { kind };
    return { kind: 'refused', refusal: detail as QueueRefusal };
  }

  async commit(peer: Waiter): Promise<boolean> {
    return (await scripts.commit.run(this.#client, [this.#keys(peer.room).claims], [peer.id])) === 1;
  }

  async confirm(peer: Waiter): Promise<void> {
    await scripts.confirm.run(this.#client, [this.#keys(peer.room).claims], [peer.id]);
  }

  async abort(peer: Waiter, stillThere: boolean): Promise<'aborted' | 'matched'> {
    const k = this.#keys(peer.room);
    const result = await scripts.abort.run(this.#client, [k.q, k.w, k.claims, k.used, k.limits], [peer.id, stillThere ? '1' : '0']);
    return result === 'matched' ? 'matched' : 'aborted';
  }

  async cancel(waiter: Waiter): Promise<boolean> {
    const k = this.#keys(waiter.room);
    return (await scripts.cancel.run(this.#client, [k.q, k.w, k.limits], [waiter.id, waiter.limitKey])) === 1;
  }

  /** Stops the heartbeat and removes it: this process's waiters (answered by now) are not handed out. */
  async close(): Promise<void> {
    clearInterval(this.#heartbeat);
    await this.#client.del(this.#alive).catch(() => undefined);
  }
}
