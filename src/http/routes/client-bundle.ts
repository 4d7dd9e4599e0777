/**
 * `GET /client/pairup.js`: the browser client (pairup/browser) as one ES module, and its source map,
 * so that a page can `import { connectPeer } from 'https://HOST/client/pairup.js'` with no bundler.
 * Built into dist/browser by `npm run build`, read once at start-up, served with an ETag: browsers
 * keep it for an hour, then ask again and get 304 while it is unchanged.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { ApiError } from '../api-error.js';
import { sendError } from '../error-handler.js';
import { methodNotAllowed } from '../method-not-allowed.js';
import type { App } from '../types.js';

export const CLIENT_BUNDLE_PATH = '/client/pairup.js';
/** Long enough to spare repeat loads, short enough that an upgrade reaches pages within the hour. */
export const CLIENT_CACHE_CONTROL = 'public, max-age=3600';

const FILES: Readonly<Record<string, string>> = {
  'pairup.js': 'text/javascript; charset=utf-8',
  'pairup.js.map': 'application/json; charset=utf-8',
};

export async function clientBundleRoutes(app: App, options: { readonly dir: URL }): Promise<void> {
  const files = new Map<string, { body: Buffer; etag: string }>();
  for (const name of Object.keys(FILES)) {
    try {
      const body = await readFile(new URL(name, options.dir));
      files.set(name, { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` });
    } catch {
      // Not built (tests run from the sources): the path answers 404.
    }
  }
  for (const [name, type] of Object.entries(FILES)) {
    const path = `/client/${name}`;
    app.get(path, { exposeHeadRoute: false }, (request, reply) => {
      const file = files.get(name);
      if (file === undefined) {
        sendError(reply, new ApiError('not_found', ['GET', path]));
        return;
      }
      void reply.header('cache-control', CLIENT_CACHE_CONTROL).header('etag', file.etag);
      if (request.headers['if-none-match'] === file.etag) {
        void reply.code(304).send();
        return;
      }
      void reply.type(type).send(file.body);
    });
    methodNotAllowed(app, path, ['GET']);
  }
}
