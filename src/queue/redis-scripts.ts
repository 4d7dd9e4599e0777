/**
 * The Redis queue's Lua scripts (one a seam step, run atomically by Redis; the keys they use are
 * described in redis.ts) and how one is run: EVALSHA, EVAL when Redis does not have it.
 */
import { createHash } from 'node:crypto';
import { ErrorReply } from 'redis';
import { BackendUnavailableError } from './seam.js';

/**
 * What the queue needs of a node-redis client: a single Redis (`createClient`) and a Redis Cluster
 * (`createCluster`) both have it, and route each call by its first key.
 */
export interface RedisCommands {
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  evalSha(sha: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  zRem(key: string, member: string): Promise<unknown>;
  del(key: string): Promise<unknown>;
}

/** How long the claims of a room are kept after the last one was made: far longer than any confirmation takes. */
const CLAIMS_TTL_MS = 60_000;

/** Redis's clock in milliseconds, in a script (Redis 7 replicates a script's effects, so TIME is allowed). */
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * A stored waiter's deadline and connection, read without decoding the client's data: JSON nested
 * past cjson's limit (1000 levels; 2 KB of meta is enough) would fail the script of every join.
 */
const HEADER = `local function header(stored)
  local a = string.find(stored, '\\n', 1, true)
  local b = string.find(stored, '\\n', a + 1, true)
  return tonumber(string.sub(stored, 1, a - 1)), string.sub(stored, a + 1, b - 1)
end`;

/** Extends the keys' time to live to at least ttl milliseconds (never shortens it). */
const KEEP = `local function keep(ttl, ...)
  for _, key in ipairs({...}) do
    if redis.call('PTTL', key) < ttl then redis.call('PEXPIRE', key, ttl) end
  end
end`;

const JOIN = `${NOW}
${KEEP}
${HEADER}
local q, w, claims, used = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local record, id, connection = ARGV[1], ARGV[2], ARGV[3]
local byCode, refusal, codeTtlMs, waitMs = ARGV[4] == '1', ARGV[5], ARGV[6], tonumber(ARGV[7])
local grace = tonumber(ARGV[8])
if byCode and redis.call('EXISTS', used) == 1 then return {'refused', 'code_used'} end
local ids = redis.call('LRANGE', q, 0, -1)
for _, candidate in ipairs(ids) do
  local stored = redis.call('HGET', w, candidate)
  local deadline, owner
  if stored then deadline, owner = header(stored) end
  if not stored or deadline + grace < now then
    -- Past its deadline: its process would have taken it out, so that process is gone.
    redis.call('LREM', q, 1, candidate)
    redis.call('HDEL', w, candidate)
  elseif owner == connection then
    if byCode then return {'refused', 'code_taken'} end
  else
    redis.call('LREM', q, 1, candidate)
    redis.call('HDEL', w, candidate)
    redis.call('HSET', claims, candidate, cjson.encode({waiter = stored, by = id, code = byCode, committed = false}))
    redis.call('PEXPIRE', claims, ${CLAIMS_TTL_MS})
    if byCode then redis.call('SET', used, '1', 'PX', codeTtlMs) end
    return {'claimed', stored}
  end
end
if refusal ~= '' then return {'refused', refusal} end
local deadline = now + waitMs
redis.call('RPUSH', q, id)
redis.call('HSET', w, id, deadline .. '\\n' .. connection .. '\\n' .. record)
keep(waitMs + grace, q, w)
return {'queued'}
`;

/** Commits the claim on waiter ARGV[1] if it is the one arrival ARGV[2] made (not a later arrival's). */
const COMMIT = `
local claim = redis.call('HGET', KEYS[1], ARGV[1])
if not claim then return 0 end
claim = cjson.decode(claim)
if claim.by ~= ARGV[2] then return 0 end
claim.committed = true
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(claim))
return 1
`;

const CONFIRM = `return redis.call('HDEL', KEYS[1], ARGV[1])`;

/** Returns 'matched', 'aborted', or (put back) the waiter's deadline: its limit entry is put back too. */
const ABORT = `${NOW}
${KEEP}
${HEADER}
local q, w, claims, used = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, stillThere, grace = ARGV[1], ARGV[2] == '1', tonumber(ARGV[3])
local claim = redis.call('HGET', claims, id)
if not claim then return 'aborted' end
redis.call('HDEL', claims, id)
claim = cjson.decode(claim)
if claim.committed then return 'matched' end
if claim.code then redis.call('DEL', used) end
if not stillThere then return 'aborted' end
local deadline = header(claim.waiter)
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

/**
 * Remembers that the code of room ARGV[1] is used for ARGV[2] ms; returns the rooms forgotten to stay
 * within ARGV[3] (the oldest), whose `used` keys the caller deletes (they are in other slots).
 */
const REMEMBER = `${NOW}
local codes, room, most = KEYS[1], ARGV[1], tonumber(ARGV[3])
local untilMs = now + tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', codes, '-inf', now)
redis.call('ZADD', codes, untilMs, room)
local over = redis.call('ZCARD', codes) - most
local forgotten = {}
if over > 0 then
  local popped = redis.call('ZPOPMIN', codes, over)
  for i = 1, #popped, 2 do forgotten[#forgotten + 1] = popped[i] end
end
redis.call('PEXPIRE', codes, untilMs - now)
return forgotten
`;

/** A group room's stored waiter: its deadline, connection and when it was queued (Redis's clock). */
const GROUP_HEADER = `local function header(stored)
  local a = string.find(stored, '\\n', 1, true)
  local b = string.find(stored, '\\n', a + 1, true)
  local c = string.find(stored, '\\n', b + 1, true)
  return tonumber(string.sub(stored, 1, a - 1)), string.sub(stored, a + 1, b - 1), tonumber(string.sub(stored, b + 1, c - 1))
end`;

/**
 * Takes the picked ids out of the room as one open group (its record at `group`), marks the code
 * used, and returns them as stored, oldest first.
 */
const CLAIM_GROUP = `local function claimGroup(q, w, group, used, picked, stored, byCode, codeTtlMs)
  local members = {}
  local reply = {'claimed'}
  for _, id in ipairs(picked) do
    redis.call('LREM', q, 1, id)
    redis.call('HDEL', w, id)
    members[id] = stored[id]
    reply[#reply + 1] = stored[id]
  end
  -- A record lasts a minute: far longer than any member's process waits before it asks it.
  redis.call('SET', group, cjson.encode({state = 'open', code = byCode, members = members}), 'PX', ${CLAIMS_TTL_MS})
  if byCode then redis.call('SET', used, '1', 'PX', codeTtlMs) end
  return reply
end`;

/** Pop-or-push for a group (see MatchQueue.gather): the pair script's rules, one waiter per connection. */
const GATHER = `${NOW}
${KEEP}
${GROUP_HEADER}
${CLAIM_GROUP}
local q, w, group, used = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local record, id, connection = ARGV[1], ARGV[2], ARGV[3]
local byCode, refusal, codeTtlMs, waitMs = ARGV[4] == '1', ARGV[5], ARGV[6], tonumber(ARGV[7])
local grace, size, min, fillWaitMs = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
if byCode and redis.call('EXISTS', used) == 1 then return {'refused', 'code_used'} end
local picked, stored, seen = {}, {}, {}
local oldest
for _, candidate in ipairs(redis.call('LRANGE', q, 0, -1)) do
  local entry = redis.call('HGET', w, candidate)
  local deadline, owner, queuedAt
  if entry then deadline, owner, queuedAt = header(entry) end
  if not entry or deadline + grace < now then
    redis.call('LREM', q, 1, candidate)
    redis.call('HDEL', w, candidate)
  elseif owner == connection then
    if byCode then return {'refused', 'code_taken'} end
  elseif #picked < size - 1 and not seen[owner] then
    seen[owner] = true
    picked[#picked + 1] = candidate
    stored[candidate] = entry
    if not oldest then oldest = queuedAt end
  end
end
local count = #picked + 1
if count == size or (min < size and count >= min and oldest and oldest + fillWaitMs <= now) then
  return claimGroup(q, w, group, used, picked, stored, byCode, codeTtlMs)
end
if refusal ~= '' then return {'refused', refusal} end
local deadline = now + waitMs
redis.call('RPUSH', q, id)
redis.call('HSET', w, id, deadline .. '\\n' .. connection .. '\\n' .. now .. '\\n' .. record)
keep(waitMs + grace, q, w)
return {'queued'}
`;

/** A waiter whose fill time is over forms its room's group with those present, if at least min (see MatchQueue.fill). */
const FILL = `${NOW}
${GROUP_HEADER}
${CLAIM_GROUP}
local q, w, group, used = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, size, min, byCode, codeTtlMs, grace = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1', ARGV[5], tonumber(ARGV[6])
if redis.call('HEXISTS', w, id) == 0 then return {} end
local picked, stored, seen = {}, {}, {}
for _, candidate in ipairs(redis.call('LRANGE', q, 0, -1)) do
  local entry = redis.call('HGET', w, candidate)
  local deadline, owner
  if entry then deadline, owner = header(entry) end
  if not entry or deadline + grace < now then
    redis.call('LREM', q, 1, candidate)
    redis.call('HDEL', w, candidate)
  elseif #picked < size and not seen[owner] then
    seen[owner] = true
    picked[#picked + 1] = candidate
    stored[candidate] = entry
  end
end
if #picked < min then return {} end
return claimGroup(q, w, group, used, picked, stored, byCode, codeTtlMs)
`;

/** The commit point of a group: 1 when it was open (now committed), 0 when a member was withdrawn first. */
const COMMIT_GROUP = `
local record = redis.call('GET', KEYS[1])
if not record then return 0 end
record = cjson.decode(record)
if record.state ~= 'open' then return 0 end
redis.call('SET', KEYS[1], cjson.encode({state = 'committed'}), 'KEEPTTL')
return 1
`;

/**
 * Releases a group not committed (see MatchQueue.release). ARGV: the group id (its key is KEYS[3]), the grace, then
 * pairs of a member id and 1 (back) or 0 (drop), oldest first. Returns {'matched'}, or {'aborted'}
 * followed by the id and deadline of each member put back (its limit entry is put back too).
 */
const RELEASE = `${NOW}
${KEEP}
${GROUP_HEADER}
local q, w, group, used = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local grace = tonumber(ARGV[2])
local record = redis.call('GET', group)
if not record then return {'aborted'} end
record = cjson.decode(record)
if record.state == 'committed' then return {'matched'} end
record.members = record.members or {}
if record.state == 'open' then
  record.state = 'aborted'
  if record.code then redis.call('DEL', used) end
end
local reply = {'aborted'}
-- The youngest first, each pushed in front of the one before: back in their order, at the head.
for i = #ARGV - 1, 3, -2 do
  local id = ARGV[i]
  local entry = record.members[id]
  if entry then
    record.members[id] = nil
    local deadline = header(entry)
    if ARGV[i + 1] == '1' and deadline + grace >= now then
      redis.call('LPUSH', q, id)
      redis.call('HSET', w, id, entry)
      keep(deadline + grace - now, q, w)
      reply[#reply + 1] = id
      reply[#reply + 1] = tostring(deadline)
    end
  end
end
-- Every member decided: nothing more to remember of an aborted group.
if next(record.members) == nil then redis.call('DEL', group) else redis.call('SET', group, cjson.encode(record), 'KEEPTTL') end
return reply
`;

class Script {
  readonly #sha: string;
  constructor(readonly source: string) {
    this.#sha = createHash('sha1').update(source).digest('hex');
  }

  /**
   * EVALSHA, falling back to EVAL when Redis does not have the script (a restart, a failover). A
   * Redis that cannot be reached (or that says it cannot serve now) is a BackendUnavailableError.
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
      // Redis answered that the script failed: a bug to log and answer 500, not Redis being away.
      if (error instanceof ErrorReply && error.message.startsWith('ERR ')) throw new Error(`Redis script failed: ${error.message}`, { cause: error });
      throw new BackendUnavailableError({ cause: error });
    }
  }
}

export const scripts = {
  join: new Script(JOIN),
  commit: new Script(COMMIT),
  confirm: new Script(CONFIRM),
  abort: new Script(ABORT),
  cancel: new Script(CANCEL),
  reserve: new Script(RESERVE),
  remember: new Script(REMEMBER),
  gather: new Script(GATHER),
  fill: new Script(FILL),
  commitGroup: new Script(COMMIT_GROUP),
  release: new Script(RELEASE),
};
