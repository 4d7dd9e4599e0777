/**
 * App keys at the door (APP_KEYS_FILE): which app a request is from, whether its page's origin may
 * use that app's key, and the app's quotas. Made only when keys are configured: without them no
 * route adds a hook or a check for it, and nothing here runs.
 */
import type { Room } from '../core/types.js';
import type { AppKey, AppKeys } from '../net/app-keys.js';
import type { WindowCounter } from '../queue/counter-seam.js';
import { ApiError } from './api-error.js';
import { originAllowed } from './origin.js';
import type { AnyRequest } from './types.js';

/** The window `pairingsPerMinute` counts in. */
export const PAIRING_WINDOW_MS = 60_000;

/** Longest key accepted; keys pairup makes are 50 characters. */
const MAX_KEY_LENGTH = 256;

/**
 * A WebSocket join at the door: `enter` gets its room (in its app's namespace, with a key), its app
 * and the release of its place among the app's waiting clients, at once or once the app's count was
 * read (Redis); `refuse` gets why not (over a quota, or the count unreadable). True while the count
 * is being read.
 */
export function admitJoin(
  access: Access | undefined,
  request: AnyRequest,
  room: Room,
  enter: (room: Room, app?: AppKey, release?: () => void) => void,
  refuse: (error: unknown) => void,
): boolean {
  const app = access?.appOf(request);
  if (access === undefined || app === undefined) {
    enter(room);
    return false;
  }
  // Counted as its app's until its ticket settles; over a quota it is refused before it joins.
  let entered: (() => void) | Promise<() => void>;
  try {
    entered = access.enter(app);
  } catch (error) {
    refuse(error);
    return false;
  }
  const appRoom = { ...room, app: app.app };
  if (!(entered instanceof Promise)) {
    enter(appRoom, app, entered);
    return false;
  }
  entered.then((release) => enter(appRoom, app, release), refuse);
  return true;
}

export class Access {
  readonly #keys: AppKeys;
  readonly #counter: WindowCounter;
  readonly #now: () => number;
  /** Clients of each app this process holds joining or waiting (apps come from the file: bounded). */
  readonly #waiting = new Map<string, number>();
  /** The app of each request admitted, from its onRequest hook to its handler. */
  readonly #admitted = new WeakMap<object, AppKey>();

  constructor(keys: AppKeys, counter: WindowCounter, now: () => number = Date.now) {
    this.#keys = keys;
    this.#counter = counter;
    this.#now = now;
  }

  /**
   * The app of a request, from `Authorization: Bearer KEY` or else `?key=KEY`; throws 401
   * key_required / unknown_key, or 403 origin_not_allowed for a page its key does not allow. An
   * unknown key is told only that: not whether it is close to one, nor which apps exist.
   */
  admit(request: AnyRequest): AppKey {
    const key = keyOf(request);
    if (key === undefined) throw new ApiError('key_required');
    const app = key.length > MAX_KEY_LENGTH ? undefined : this.#keys.lookup(key);
    if (app === undefined) throw new ApiError('unknown_key');
    const origin = request.headers.origin;
    if (!originAllowed(origin, request.host, app.origins ?? '*')) {
      throw new ApiError('origin_not_allowed', [JSON.stringify((origin ?? '').slice(0, 200)), 'its app key']);
    }
    this.#admitted.set(request, app);
    return app;
  }

  /** The apps of the keys in force, each once. */
  get apps(): readonly string[] {
    return this.#keys.apps;
  }

  /** The app `admit` found for this request. */
  appOf(request: AnyRequest): AppKey | undefined {
    return this.#admitted.get(request);
  }

  /**
   * Counts a client of `app` as joining until the returned function is called (once is enough;
   * later calls do nothing), or throws 429 app_over_quota / too_many_pairings (Retry-After: when
   * this minute's window ends).
   */
  enter(app: AppKey): (() => void) | Promise<() => void> {
    const waiting = this.#waiting.get(app.app) ?? 0;
    if (app.maxWaiting > 0 && waiting >= app.maxWaiting) throw new ApiError('app_over_quota', [app.maxWaiting]);
    this.#waiting.set(app.app, waiting + 1);
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      const left = (this.#waiting.get(app.app) ?? 1) - 1;
      if (left <= 0) this.#waiting.delete(app.app);
      else this.#waiting.set(app.app, left);
    };
    if (app.pairingsPerMinute === 0) return release;
    const now = this.#now();
    const windowStart = now - (now % PAIRING_WINDOW_MS);
    const check = (count: number): (() => void) => {
      if (count < app.pairingsPerMinute) return release;
      release();
      const retryAfterS = Math.max(1, Math.ceil((windowStart + PAIRING_WINDOW_MS - now) / 1000));
      throw new ApiError('too_many_pairings', [app.pairingsPerMinute], undefined, undefined, retryAfterS);
    };
    let count: number | Promise<number>;
    try {
      count = this.#counter.get(app.app, windowStart);
    } catch (error) {
      release();
      throw error;
    }
    if (!(count instanceof Promise)) return check(count);
    return count.then(check, (error: unknown) => {
      release();
      throw error;
    });
  }

  /** Counts one pairing of `app` (called by one side of each match: the arrival's). */
  paired(app: AppKey): Promise<void> {
    if (app.pairingsPerMinute === 0) return Promise.resolve();
    const now = this.#now();
    return Promise.resolve(this.#counter.add(app.app, now - (now % PAIRING_WINDOW_MS), PAIRING_WINDOW_MS));
  }
}

/** The key a request names, if any: the Authorization header's bearer token, or the `key` parameter. */
function keyOf(request: AnyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer +(\S+) *$/i.exec(header);
    return match?.[1];
  }
  const key = (request.query as { key?: unknown } | undefined)?.key;
  return typeof key === 'string' && key !== '' ? key : undefined;
}
