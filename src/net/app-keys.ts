/**
 * App keys (APP_KEYS_FILE): which programs may use this server, each under its app's name, with the
 * app's settings. The file holds no key, only each key's SHA-256 (base64url): a copy of the file lets
 * nobody in. A request's key is hashed and looked up in a map of those hashes. No constant-time
 * comparison is needed: what the lookup's timing could tell is how a hash of the caller's own guess
 * compares with the stored hashes, and that says nothing about any key (SHA-256 cannot be inverted).
 */
import { createHash, randomBytes } from 'node:crypto';
import { extname } from 'node:path';
import { parseAllDocuments } from 'yaml';

/** What one key lets its holder do. */
export interface AppKey {
  /** The app: its pools and codes are its own, and its limits are counted under this name. */
  readonly app: string;
  /** Pages of these origins may use the key (a browser key is public: this is what guards it); undefined: any. */
  readonly origins: readonly string[] | undefined;
  /** Clients of the app one process holds waiting at once; 0: no limit beyond the server's. */
  readonly maxWaiting: number;
  /** Pairings the app may make a minute (across processes sharing REDIS_URL); 0: no limit. */
  readonly pairingsPerMinute: number;
  /** Whether its matches carry TURN credentials (when TURN_URLS is set). */
  readonly turn: boolean;
}

/** App names: what a pool name may be, so that they can stand in Redis keys and metrics labels as they are. */
export const APP_PATTERN = /^[A-Za-z0-9._~-]{1,64}$/;
const HASH_PATTERN = /^[A-Za-z0-9_-]{43}$/;
const FIELDS = new Set(['app', 'sha256', 'origins', 'maxWaiting', 'pairingsPerMinute', 'turn']);

/** A key's stored form: base64url(SHA-256(key)). */
export function hashKey(key: string): string {
  return createHash('sha256').update(key).digest('base64url');
}

/** A new random key: 32 bytes, base64url, behind a prefix that says what it is. */
export function newKey(): string {
  return `pairup_${randomBytes(32).toString('base64url')}`;
}

/** A bad APP_KEYS_FILE: the message names the file (when known), the entry and field, never a key. */
export class AppKeysError extends Error {
  constructor(message: string, file?: string) {
    super(`APP_KEYS_FILE ${file === undefined ? '' : `${file}: `}${message}`);
    this.name = 'AppKeysError';
  }
}

export type AppKeysFormat = 'json' | 'yaml';

/**
 * How a key file is written: `.json` is JSON and `.yaml`/`.yml` YAML; any other name is JSON when its
 * text starts with `{` or `[`, else YAML.
 */
export function formatOf(file: string, text: string): AppKeysFormat {
  const extension = extname(file).toLowerCase();
  if (extension === '.json') return 'json';
  if (extension === '.yaml' || extension === '.yml') return 'yaml';
  return /^\s*[{[]/.test(text) ? 'json' : 'yaml';
}

/**
 * The file's text, checked whole: `{"keys": [{"app", "sha256", "origins"?, "maxWaiting"?,
 * "pairingsPerMinute"?, "turn"?}, …]}`, in JSON or in YAML (the same fields under `keys:`). Returns
 * the keys by hash. `file` names the file in errors.
 */
export function parseAppKeys(text: string, format: AppKeysFormat = 'json', file?: string): ReadonlyMap<string, AppKey> {
  const fail = (message: string): never => {
    throw new AppKeysError(message, file);
  };
  const parsed = format === 'json' ? parseJson(text, fail) : parseYaml(text, fail);
  const list = isObject(parsed) ? parsed['keys'] : undefined;
  if (!Array.isArray(list)) fail(format === 'json' ? 'must be a JSON object {"keys": [ … ]}' : 'must be a YAML mapping whose "keys" is a list ("keys:" then "- app: …" lines)');
  const byHash = new Map<string, AppKey>();
  (list as unknown[]).forEach((entry: unknown, index) => {
    const where = `keys[${index}]`;
    if (!isObject(entry)) fail(`${where} must be an object`);
    const fields = entry as Record<string, unknown>;
    for (const field of Object.keys(fields)) {
      if (!FIELDS.has(field)) fail(`${where} has unknown field ${JSON.stringify(field)}; allowed: ${[...FIELDS].join(', ')}`);
    }
    const { app, sha256, origins, maxWaiting = 0, pairingsPerMinute = 0, turn = true } = fields;
    if (typeof app !== 'string' || !APP_PATTERN.test(app)) return fail(`${where}.app must match ${APP_PATTERN.source}`);
    if (typeof sha256 !== 'string' || !HASH_PATTERN.test(sha256)) {
      return fail(`${where}.sha256 must be base64url(SHA-256(key)), 43 characters (pairup key new --app ${app} prints it)`);
    }
    if (byHash.has(sha256)) fail(`${where}.sha256 is listed twice`);
    if (origins !== undefined && (!Array.isArray(origins) || !origins.every(isOrigin))) {
      fail(`${where}.origins must be a list of origins like "https://app.example" (scheme, host, optional port; no path)`);
    }
    byHash.set(
      sha256,
      Object.freeze({
        app,
        origins: origins === undefined ? undefined : Object.freeze([...(origins as string[])]),
        maxWaiting: count(`${where}.maxWaiting`, maxWaiting, fail),
        pairingsPerMinute: count(`${where}.pairingsPerMinute`, pairingsPerMinute, fail),
        turn: flag(`${where}.turn`, turn, fail),
      }),
    );
  });
  return byHash;
}

function parseJson(text: string, fail: (message: string) => never): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    return fail(`is not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * YAML 1.2's core schema (`no` is a string, not false), one document, duplicate keys refused, and a
 * warning (an unknown tag, say) refused like an error: a key file is read exactly or not at all.
 */
function parseYaml(text: string, fail: (message: string) => never): unknown {
  const documents = parseAllDocuments(text, { schema: 'core', uniqueKeys: true, prettyErrors: true, logLevel: 'silent' });
  if (documents.length === 0) return null;
  if (documents.length > 1) return fail(`is not valid YAML: it holds ${documents.length} documents (separated by ---); a key file is one`);
  const document = documents[0] as (typeof documents)[number];
  const problem = document.errors[0] ?? document.warnings[0];
  // The first line of a pretty error says what and where ("… at line 3, column 5"); the rest quotes the file.
  if (problem !== undefined) return fail(`is not valid YAML: ${problem.message.split(':\n', 1)[0] ?? problem.message}`);
  try {
    return document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    return fail(`is not valid YAML: ${(error as Error).message}`);
  }
}

/** The keys in force: replaced whole when the file is read again (SIGHUP). */
export class AppKeys {
  #byHash: ReadonlyMap<string, AppKey>;
  #apps: readonly string[];

  constructor(byHash: ReadonlyMap<string, AppKey>) {
    this.#byHash = byHash;
    this.#apps = appsOf(byHash);
  }

  replace(byHash: ReadonlyMap<string, AppKey>): void {
    this.#byHash = byHash;
    this.#apps = appsOf(byHash);
  }

  /** The apps the keys belong to, each once. */
  get apps(): readonly string[] {
    return this.#apps;
  }

  /** The settings of `key`, or undefined for a key the file does not list. */
  lookup(key: string): AppKey | undefined {
    return this.#byHash.get(hashKey(key));
  }

  get size(): number {
    return this.#byHash.size;
  }
}

function appsOf(byHash: ReadonlyMap<string, AppKey>): readonly string[] {
  return Object.freeze([...new Set([...byHash.values()].map((key) => key.app))]);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isOrigin(value: unknown): boolean {
  if (typeof value !== 'string' || !URL.canParse(value)) return false;
  const url = new URL(value);
  return /^https?:$/.test(url.protocol) && url.origin === value;
}

function count(where: string, value: unknown, fail: (message: string) => never): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) return fail(`${where} must be a whole number, 0 or more (0: no limit)`);
  return value;
}

function flag(where: string, value: unknown, fail: (message: string) => never): boolean {
  if (typeof value !== 'boolean') return fail(`${where} must be true or false`);
  return value;
}
