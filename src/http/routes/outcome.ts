/**
 * `POST /outcome`: a matched client says how its connection to its partner went (a group's member: to
 * one other member), proving the match with an HMAC of its id under the match secret (never the
 * secret). 204 once checked, counted once per side (per member and link in a group); 403 `bad_proof`
 * for a proof that is not the match's.
 */
import type { Lobby } from '../../core/lobby.js';
import { isBadReport, OUTCOME_BODY_LIMIT_BYTES, OUTCOME_PATH, parseOutcomeReport } from '../../protocol/outcome.js';
import { BackendUnavailableError } from '../../queue/seam.js';
import type { Access } from '../access.js';
import { ApiError } from '../api-error.js';
import { methodNotAllowed } from '../method-not-allowed.js';
import { linkSide, pairSide, provesMatch, type OutcomeRecorder } from '../outcomes.js';
import type { App } from '../types.js';

export interface OutcomeRouteOptions {
  readonly lobby: Lobby;
  readonly recordOutcome: OutcomeRecorder;
  /** With app keys: every match is an app's, and its proof says which (see matchSecret). */
  readonly access: Access | undefined;
}

export function outcomeRoutes(app: App, options: OutcomeRouteOptions, done: (error?: Error) => void): void {
  const { lobby, recordOutcome, access } = options;
  /**
   * The app of the match a report proves (undefined without app keys), or null when the proof is
   * not the match's. No key is asked for: the proof is the credential. With app keys, the app whose
   * secret it matches is the match's (one HMAC per app of the file: a bounded list).
   */
  const provenApp = (report: { readonly matchId: string; readonly proof: string; readonly size?: number }): string | undefined | null => {
    const proves = (app?: string): boolean => provesMatch(report.proof, lobby.secretOf(report.matchId, app, report.size), report.matchId);
    if (access === undefined) return proves() ? undefined : null;
    return access.apps.find((name) => proves(name)) ?? null;
  };
  app.route({
    method: 'POST',
    url: OUTCOME_PATH,
    bodyLimit: OUTCOME_BODY_LIMIT_BYTES,
    handler: async (request, reply) => {
      const names = Object.keys(request.query as object);
      if (names.length > 0) throw new ApiError('query_not_allowed', [OUTCOME_PATH, names.map((name) => JSON.stringify(name)).join(', ')]);
      const report = parseOutcomeReport(request.body);
      if (isBadReport(report)) throw new ApiError('invalid_outcome', [report.why], report.field);
      const app = provenApp(report);
      if (app === null) throw new ApiError('bad_proof', [], 'proof');
      try {
        const { matchId, via, ms, initiator, member, peer } = report;
        const side = initiator === undefined ? linkSide(member as number, peer as number) : pairSide(initiator);
        await recordOutcome({ matchId, side, via, ...(ms === undefined ? {} : { ms }), app });
      } catch (error) {
        if (error instanceof BackendUnavailableError) throw new ApiError('backend_unavailable');
        throw error;
      }
      return reply.code(204).send();
    },
  });
  methodNotAllowed(app, OUTCOME_PATH, ['POST']);
  done();
}
