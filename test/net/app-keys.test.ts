import { describe, expect, it } from 'vitest';
import { AppKeys, formatOf, hashKey, newKey, parseAppKeys } from '../../src/net/app-keys.js';

const HASH = hashKey('pairup_k');

/** The message of what `run` throws. */
function messageOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('nothing was thrown');
}

describe('APP_KEYS_FILE', () => {
  it('reads entries with their defaults, and finds a key by its hash alone', () => {
    const keys = new AppKeys(parseAppKeys(JSON.stringify({ keys: [{ app: 'chess', sha256: HASH }] })));
    expect(keys.lookup('pairup_k')).toEqual({ app: 'chess', origins: undefined, maxWaiting: 0, pairingsPerMinute: 0, turn: true });
    expect(keys.lookup('pairup_other')).toBeUndefined();
    expect(keys.lookup(HASH)).toBeUndefined();
  });

  it('makes keys of 32 random bytes, each different', () => {
    const [a, b] = [newKey(), newKey()];
    expect(a).toMatch(/^pairup_[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
  });

  it.each([
    ['{', 'APP_KEYS_FILE is not valid JSON: '],
    ['[]', 'APP_KEYS_FILE must be a JSON object {"keys": [ … ]}'],
    [JSON.stringify({ keys: [{ app: 'a b', sha256: HASH }] }), 'APP_KEYS_FILE keys[0].app must match ^[A-Za-z0-9._~-]{1,64}$'],
    [JSON.stringify({ keys: [{ app: 'a', sha256: 'pairup_k' }] }), 'APP_KEYS_FILE keys[0].sha256 must be base64url(SHA-256(key)), 43 characters (pairup key new --app a prints it)'],
    [JSON.stringify({ keys: [{ app: 'a', sha256: HASH, key: 'x' }] }), 'APP_KEYS_FILE keys[0] has unknown field "key"; allowed: app, sha256, origins, maxWaiting, pairingsPerMinute, turn'],
    [JSON.stringify({ keys: [{ app: 'a', sha256: HASH }, { app: 'b', sha256: HASH }] }), 'APP_KEYS_FILE keys[1].sha256 is listed twice'],
    [JSON.stringify({ keys: [{ app: 'a', sha256: HASH, origins: ['https://a.example/path'] }] }), 'APP_KEYS_FILE keys[0].origins must be a list of origins like "https://app.example" (scheme, host, optional port; no path)'],
    [JSON.stringify({ keys: [{ app: 'a', sha256: HASH, maxWaiting: -1 }] }), 'APP_KEYS_FILE keys[0].maxWaiting must be a whole number, 0 or more (0: no limit)'],
    [JSON.stringify({ keys: [{ app: 'a', sha256: HASH, turn: 'no' }] }), 'APP_KEYS_FILE keys[0].turn must be true or false'],
  ])('refuses %s, naming the entry and field', (text, message) => {
    expect(() => parseAppKeys(text)).toThrow(message);
  });

  it('reads a YAML file as its JSON form, with the same defaults', () => {
    const yaml = [
      '# two apps',
      'keys:',
      '  - app: chess',
      `    sha256: ${HASH}`,
      '    origins: [https://chess.example, "http://localhost:8080"]',
      '    maxWaiting: 1000',
      '    pairingsPerMinute: 600',
      '    turn: false',
      `  - {"app": "go", "sha256": "${hashKey('pairup_go')}"}`,
      '',
    ].join('\n');
    const json = JSON.stringify({
      keys: [
        { app: 'chess', sha256: HASH, origins: ['https://chess.example', 'http://localhost:8080'], maxWaiting: 1000, pairingsPerMinute: 600, turn: false },
        { app: 'go', sha256: hashKey('pairup_go') },
      ],
    });
    const fromYaml = parseAppKeys(yaml, 'yaml', 'keys.yaml');
    expect(fromYaml).toEqual(parseAppKeys(json));
    expect(new AppKeys(fromYaml).lookup('pairup_k')).toEqual({ app: 'chess', origins: ['https://chess.example', 'http://localhost:8080'], maxWaiting: 1000, pairingsPerMinute: 600, turn: false });
    expect(new AppKeys(fromYaml).lookup('pairup_go')).toEqual({ app: 'go', origins: undefined, maxWaiting: 0, pairingsPerMinute: 0, turn: true });
    expect(new AppKeys(fromYaml).apps).toEqual(['chess', 'go']);
  });

  it.each([
    ['keys:\n  - app: chess\n    sha256: x\n  oops', 'APP_KEYS_FILE keys.yaml: is not valid YAML: All mapping items must start at the same column at line 4, column 1'],
    ['keys: [', 'APP_KEYS_FILE keys.yaml: is not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a ] at line 1, column 8'],
    ['keys: []\nkeys: []', 'APP_KEYS_FILE keys.yaml: is not valid YAML: Map keys must be unique at line 2, column 1'],
    ['keys: []\n---\nkeys: []', 'APP_KEYS_FILE keys.yaml: is not valid YAML: it holds 2 documents (separated by ---); a key file is one'],
    ['keys: !secret []', 'APP_KEYS_FILE keys.yaml: is not valid YAML: Unresolved tag: !secret at line 1, column 7'],
    ['', 'APP_KEYS_FILE keys.yaml: must be a YAML mapping whose "keys" is a list ("keys:" then "- app: …" lines)'],
    ['- app: chess', 'APP_KEYS_FILE keys.yaml: must be a YAML mapping whose "keys" is a list ("keys:" then "- app: …" lines)'],
    [`keys:\n  - app: chess\n    sha256: ${HASH}\n    turn: no`, 'APP_KEYS_FILE keys.yaml: keys[0].turn must be true or false'],
    [`keys:\n  - app: chess\n    sha256: ${HASH}\n    maxWaiting: "5"`, 'APP_KEYS_FILE keys.yaml: keys[0].maxWaiting must be a whole number, 0 or more (0: no limit)'],
    ['keys:\n  - app: a b\n    sha256: x', 'APP_KEYS_FILE keys.yaml: keys[0].app must match ^[A-Za-z0-9._~-]{1,64}$'],
    [`keys:\n  - app: chess\n    sha256: ${HASH}\n    key: pairup_k`, 'APP_KEYS_FILE keys.yaml: keys[0] has unknown field "key"; allowed: app, sha256, origins, maxWaiting, pairingsPerMinute, turn'],
  ])('refuses the YAML %j, naming the file and the problem', (text, message) => {
    expect(messageOf(() => parseAppKeys(text, 'yaml', 'keys.yaml'))).toBe(message);
  });

  it('names the file in JSON errors too', () => {
    expect(() => parseAppKeys('{', 'json', '/etc/pairup/keys.json')).toThrow(/^APP_KEYS_FILE \/etc\/pairup\/keys\.json: is not valid JSON: /);
  });

  it.each([
    ['keys.json', '{}', 'json'],
    ['keys.JSON', 'keys: []', 'json'],
    ['keys.yaml', '{"keys": []}', 'yaml'],
    ['keys.yml', 'keys: []', 'yaml'],
    ['keys', '  {"keys": []}', 'json'],
    ['keys.conf', '[]', 'json'],
    ['keys', 'keys:\n  - app: chess', 'yaml'],
  ])('reads %s holding %j as %s', (file, text, format) => {
    expect(formatOf(file, text)).toBe(format);
  });
});
