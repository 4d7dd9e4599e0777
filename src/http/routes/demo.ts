/**
 * `GET /demo/`: the demo page (built into dist/demo by `npm run build`), with a Content-Security-Policy
 * of its own: the API's `default-src 'none'` would block its script, its style and its WebSocket.
 * Served from memory, read once at start-up; `DEMO=off` leaves it out.
 */
import { readFile } from 'node:fs/promises';
import { ApiError } from '../api-error.js';
import { sendError } from '../error-handler.js';
import { methodNotAllowed } from '../method-not-allowed.js';
import type { AnyReply, AnyRequest, App } from '../types.js';

/** The demo's policy: its own script and style, its own origin's WebSocket, nothing else. */
export const DEMO_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const FILES: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'demo.js': 'text/javascript; charset=utf-8',
  'demo.css': 'text/css; charset=utf-8',
};

export async function demoRoutes(app: App, options: { readonly dir: URL }): Promise<void> {
  const files = new Map<string, Buffer>();
  for (const name of Object.keys(FILES)) {
    try {
      files.set(name, await readFile(new URL(name, options.dir)));
    } catch {
      // Not built (tests run from the sources): /demo/ says so.
    }
  }
  if (files.size < Object.keys(FILES).length) app.log.info({ dir: options.dir.pathname }, 'demo page not built (npm run build): /demo/ answers 404');
  app.get('/demo', { exposeHeadRoute: false }, (_request, reply) => reply.redirect('/demo/', 308));
  const serve = (name: string, request: AnyRequest, reply: AnyReply): void => {
    const body = files.get(name);
    const type = FILES[name];
    if (body === undefined || type === undefined) {
      sendError(reply, new ApiError('not_found', ['GET', request.url.split('?', 1)[0]?.slice(0, 256) ?? '/demo/']));
      return;
    }
    void reply.header('content-security-policy', DEMO_CSP).header('cache-control', 'no-cache').type(type).send(body);
  };
  app.get('/demo/', { exposeHeadRoute: false }, (request, reply) => serve('index.html', request, reply));
  app.get<{ Params: { file: string } }>('/demo/:file', { exposeHeadRoute: false }, (request, reply) => serve(request.params.file, request, reply));
  for (const path of ['/demo', '/demo/', '/demo/:file']) methodNotAllowed(app, path, ['GET']);
}
