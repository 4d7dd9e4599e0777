import type { Config } from '../config.js';
import { ApiError } from './api-error.js';
import type { AnyReply, AnyRequest } from './types.js';

/**
 * Whether a page of `origin` may use pairup. CORS only decides what a page may read: a browser
 * sends a simple GET or POST from any page and only hides the answer, so a page that CORS_ORIGINS
 * does not allow could still have its visitors queued and paired. The routes that act (the match
 * routes, `/ws`) therefore refuse such a page themselves.
 * - No Origin: not a browser (or a browser's same-origin GET, which carries none).
 * - pairup's own origin (the demo page): always, whatever CORS_ORIGINS says.
 * - Otherwise: CORS_ORIGINS is `*`, or lists it (`off` lists none).
 */
export function originAllowed(origin: string | undefined, host: string, allowed: Config['corsOrigins']): boolean {
  if (origin === undefined || allowed === '*' || origin === `https://${host}`) return true;
  return allowed !== 'off' && allowed.includes(origin);
}

/** 403 origin_not_allowed for a page `originAllowed` refuses, before anything else happens. */
export function refuseOtherOrigins(allowed: Config['corsOrigins']) {
  return (request: AnyRequest, _reply: AnyReply, done: (error?: Error) => void): void => {
    const origin = request.headers.origin;
    if (originAllowed(origin, request.host, allowed)) return done();
    done(new ApiError('origin_not_allowed', [JSON.stringify((origin ?? '').slice(0, 200)), 'CORS_ORIGINS']));
  };
}
