/**
 * Variables pairup would silently ignore: every name in `.env` that is not a setting (the file is
 * pairup's alone), and names in the environment that look like a misspelt setting
 * (`MATCH_TIMOUT_MS`). The environment holds many other programs' variables, so only names within
 * a typo or two of a setting are mentioned there.
 */
import { ENV_KEYS } from './config.js';

const KNOWN = Object.keys(ENV_KEYS);

/** Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number): number => d[i]?.[j] ?? Infinity;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = best;
    }
  }
  return at(a.length, b.length);
}

/**
 * The setting `name` is probably a misspelling of, if any: one edit away (two for names of 10
 * characters or more), case aside. Short names need the tighter bound: HOME is two edits from HOST.
 */
export function closestSetting(name: string): string | undefined {
  const upper = name.toUpperCase();
  const allowed = name.length >= 10 ? 2 : 1;
  let best: { key: string; edits: number } | undefined;
  for (const key of KNOWN) {
    const edits = distance(upper, key);
    if (edits <= allowed && (best === undefined || edits < best.edits)) best = { key, edits };
  }
  return best?.key;
}

/**
 * One line per suspicious name: every unknown name set in `.env` (`fileKeys`), and each name of the
 * environment (`envKeys`) that is not a setting but close to one.
 */
export function configWarnings(fileKeys: readonly string[], envKeys: readonly string[]): string[] {
  const warnings: string[] = [];
  const suggestion = (name: string): string => {
    const close = closestSetting(name);
    return close === undefined ? '' : `; did you mean ${close}?`;
  };
  for (const name of fileKeys) {
    if (!KNOWN.includes(name)) warnings.push(`.env sets ${name}, which is not a pairup setting: it is ignored${suggestion(name)}`);
  }
  for (const name of envKeys) {
    if (KNOWN.includes(name) || fileKeys.includes(name)) continue;
    const close = closestSetting(name);
    if (close !== undefined) warnings.push(`the environment sets ${name}, which is not a pairup setting: it is ignored; did you mean ${close}?`);
  }
  return warnings;
}
