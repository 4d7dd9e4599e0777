import Negotiator from 'negotiator';

export type AnswerFormat = 'text' | 'json';

const OFFERED = ['text/plain', 'application/json'];
const FORMATS: Readonly<Record<string, AnswerFormat>> = { 'text/plain': 'text', 'application/json': 'json' };

/**
 * The answer format an `Accept` header asks for: text/plain when absent or `*\/*` (what curl sends),
 * JSON when the client prefers it; undefined when it accepts neither.
 */
export function answerFormat(accept: string | undefined): AnswerFormat | undefined {
  // The common headers, answered without parsing.
  if (accept === undefined || accept === '' || accept === '*/*' || accept === 'text/plain') return 'text';
  if (accept === 'application/json') return 'json';
  const type = new Negotiator({ headers: { accept } }).mediaType(OFFERED);
  return type === undefined ? undefined : FORMATS[type];
}

export const OFFERED_TYPES = OFFERED.join(', ');
