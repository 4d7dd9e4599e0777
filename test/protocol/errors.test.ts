import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ApiError } from '../../src/http/api-error.js';
import { errors } from '../../src/protocol/errors.js';

describe('error table', () => {
  it('keys every entry by its own code', () => {
    for (const [key, entry] of Object.entries(errors)) expect(entry.code).toBe(key);
  });

  it('gives every entry an error status', () => {
    for (const entry of Object.values(errors)) {
      expect(entry.status).toBeGreaterThanOrEqual(400);
      expect(entry.status).toBeLessThan(600);
    }
  });

  it('formats messages and serialises to the JSON body', () => {
    const error = new ApiError('meta_too_large', [2048, 4000], 'meta');
    expect(error.statusCode).toBe(400);
    expect(JSON.parse(JSON.stringify(error))).toEqual({
      error: 'meta_too_large',
      message: 'meta must be at most 2048 bytes serialised as JSON, got 4000',
      field: 'meta',
    });
    expect(new ApiError('server_full', [10]).retryAfterS).toBe(1);
  });

  it('is listed in README.md, code and status alike', async () => {
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    const rows = readme.split('\n');
    for (const entry of Object.values(errors)) {
      const retryAfter = entry.retryAfterS === undefined ? '' : String(entry.retryAfterS);
      expect(rows, entry.code).toContainEqual(
        expect.stringMatching(new RegExp(`^\\| \`${entry.code}\` \\| ${entry.status} \\| ${retryAfter} ?\\| `)),
      );
    }
  });
});
