export interface WorkloadResult {
  /** Figures by name; the table compares each with the baseline's. */
  readonly metrics: Readonly<Record<string, number>>;
  /** Anything wrong with the answers: a workload with problems prints FAIL, not figures. */
  readonly problems: readonly string[];
}
