/**
 * What every workload checks of its answers: each 200 body is JSON naming the client itself (`self`)
 * and its partner (`peer`), both well-formed addresses of clients of this run, and pairing is
 * symmetric — every client appears as somebody's peer exactly as often as it was answered.
 */
const ADDRESS = /^127\.0\.0\.1:\d{1,5}$/;

export class Verifier {
  readonly #answered = new Map<string, number>();
  readonly #asPeer = new Map<string, number>();
  readonly problems: string[] = [];
  answers = 0;

  /** Records one 200 body; returns the parsed match or undefined if it is malformed. */
  record(body: string | Buffer): { self: string; peer: string } | undefined {
    this.answers++;
    let match: { self?: unknown; peer?: unknown };
    try {
      match = JSON.parse(String(body)) as { self?: unknown; peer?: unknown };
    } catch {
      this.#problem(`not JSON: ${String(body).slice(0, 80)}`);
      return undefined;
    }
    const { self, peer } = match;
    if (typeof self !== 'string' || typeof peer !== 'string' || !ADDRESS.test(self) || !ADDRESS.test(peer)) {
      this.#problem(`malformed match: ${String(body).slice(0, 120)}`);
      return undefined;
    }
    if (self === peer) this.#problem(`paired with itself: ${self}`);
    this.#answered.set(self, (this.#answered.get(self) ?? 0) + 1);
    this.#asPeer.set(peer, (this.#asPeer.get(peer) ?? 0) + 1);
    return { self, peer };
  }

  /**
   * Problems found, if any. `cutOff` is how many pairings may have lost one side's answer because
   * the load generator stopped with requests in flight (at most one per connection).
   */
  verdict(cutOff: number): string[] {
    let unmatched = 0;
    const addresses = new Set([...this.#answered.keys(), ...this.#asPeer.keys()]);
    for (const address of addresses) {
      unmatched += Math.abs((this.#answered.get(address) ?? 0) - (this.#asPeer.get(address) ?? 0));
    }
    const problems = [...this.problems];
    if (this.answers === 0) problems.push('no answers');
    if (unmatched > cutOff) problems.push(`asymmetric pairing: ${unmatched} one-sided answers (allowed ${cutOff})`);
    return problems;
  }

  #problem(text: string): void {
    if (this.problems.length < 5) this.problems.push(text);
  }
}

/** Latency percentiles in milliseconds of a list of samples. */
export function percentiles(samples: number[]): { p50: number; p99: number; max: number } {
  if (samples.length === 0) return { p50: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? 0 };
}
