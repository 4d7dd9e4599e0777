/**
 * What the client's calls (findPeer, connectPeer, reportOutcome) share: their options, how a call is
 * set up (deadline, dispatcher), how far apart its attempts are, and how a server not reached is told.
 */
import { Agent, type Dispatcher } from 'undici';

export interface FindPeerOptions {
  /** The server, e.g. `https://pairup.example:3030`. Its path is ignored. */
  readonly url: string | URL;
  /** Pool to meet in (default: the server's `default` pool). Not with `code`. */
  readonly pool?: string;
  /** Rendezvous code: meet the one other client presenting it. Not with `pool`. */
  readonly code?: string;
  /** A JSON object for the partner (at most 2048 bytes serialised); the partner's is `peerMeta`. */
  readonly meta?: Record<string, unknown>;
  /** How long to look for a partner in all, in milliseconds; default 60000. */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /** Certificate(s) to trust besides the system's, PEM: a self-signed or development server. */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /** An undici dispatcher to send through instead of a connection of its own (then `ca` is unused). */
  readonly dispatcher?: Dispatcher;
  /** The app's key, for a server with app keys (APP_KEYS_FILE): sent as `Authorization: Bearer KEY`. */
  readonly key?: string;
}

/** What `findPeer` takes besides: a group of more than two (over HTTP; `connectPeer` makes pairs alone). */
export interface FindGroupOptions extends FindPeerOptions {
  /** Members of the group, this client included: 2 (a pair, the default) to the server's MAX_GROUP_SIZE. */
  readonly size?: number;
  /** Fewest members the group may form with once its oldest has waited the server's FILL_WAIT_MS (2 to `size`). */
  readonly min?: number;
}

/** The header that names the app's key, when one is given. */
export function keyHeader(options: FindPeerOptions): { authorization?: string } {
  return options.key === undefined ? {} : { authorization: `Bearer ${options.key}` };
}

/** How long a call looks for a partner when `timeoutMs` is not given. */
export const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * Two requests (or joins) start at least this long apart, give or take half of it at random, whatever
 * the server says: a server answering 408 at once, or 503 with `Retry-After: 0`, is not hammered, and
 * clients turned away together do not come back together.
 */
const MIN_RETRY_INTERVAL_MS = 1000;

/**
 * The least wait before the next attempt, the last one having started at `startedAt`
 * (`performance.now()`): the retry interval with its jitter, less the time already gone.
 */
export function retryFloorMs(startedAt: number): number {
  return MIN_RETRY_INTERVAL_MS * (0.5 + Math.random()) - (performance.now() - startedAt);
}

/**
 * Certificate errors a client can fix by trusting the server's certificate, in words of our own:
 * Node's own message for them changes between versions (Node 24 adds advice about --use-system-ca,
 * which does not help with a self-signed server).
 */
const UNTRUSTED: Readonly<Record<string, string>> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'self-signed certificate',
  SELF_SIGNED_CERT_IN_CHAIN: 'self-signed certificate in certificate chain',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'unable to get local issuer certificate',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unable to verify the first certificate',
};

/** Why a connection failed, as one line: an untrusted certificate says how to trust it. */
export function reachFailure(error: unknown): string {
  const untrusted = UNTRUSTED[String((error as { code?: unknown } | null)?.code)];
  if (untrusted !== undefined) return `${untrusted} (not trusted: give its certificate with --cacert FILE, or the ca option)`;
  return error instanceof Error ? error.message : String(error);
}

/**
 * What to add to "cannot reach" for a URL of `http://`: pairup speaks HTTPS only, and a TLS server
 * just closes a plain-HTTP connection, which on its own reads as "other side closed".
 */
export function httpsHint(url: URL): string {
  if (url.protocol !== 'http:' && url.protocol !== 'ws:') return '';
  return ` (pairup serves HTTPS only: use https://${url.host})`;
}

/** What findPeer and connectPeer check and set up alike: the deadline and the dispatcher (its own, unless given). */
export function startCall(options: FindPeerOptions, allowH2: boolean): { timeoutMs: number; deadline: number; dispatcher: Dispatcher; own: Agent | undefined } {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!(timeoutMs > 0)) throw new RangeError('timeoutMs must be greater than 0');
  if (options.pool !== undefined && options.code !== undefined) throw new TypeError('give either pool or code, not both');
  options.signal?.throwIfAborted();
  const ca = options.ca as string | Buffer | (string | Buffer)[] | undefined;
  const own = options.dispatcher === undefined ? new Agent({ allowH2, connect: ca === undefined ? {} : { ca } }) : undefined;
  return { timeoutMs, deadline: performance.now() + timeoutMs, dispatcher: options.dispatcher ?? (own as Agent), own };
}
