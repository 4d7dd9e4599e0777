import { ApiError } from './api-error.js';
import { sendError } from './error-handler.js';
import type { App } from './types.js';

/** 405 with an Allow header for every other method on a path a plugin serves (OPTIONS is CORS's: app.ts). */
export function methodNotAllowed(app: App, url: string, allowed: readonly string[]): void {
  const allow = allowed.join(', ');
  const others = app.supportedMethods.filter((method) => !allowed.includes(method) && method !== 'OPTIONS');
  app.route({
    method: others,
    url,
    handler: (request, reply) => {
      sendError(reply.header('allow', allow), new ApiError('method_not_allowed', [request.method, url, allow]));
    },
  });
}
