/**
 * The relay's seam: how a WebSocket client's signal reaches a partner held by another process. Apart
 * from the queue's seam (seam.ts): pairing and relaying are two contracts between processes, each
 * with its own channel and connections in a shared backend.
 */
/**
 * What matched WebSocket clients send each other through the server: a signal (the frame the
 * receiver is sent: a pair's is the sender's whole `signal` frame, as it came, never parsed and
 * written again), word that the sender left (in a group, `from` is the sender's index), or the
 * sender's part of a punch attempt.
 */
export type RelayMessage = { readonly t: 'signal'; readonly text: string } | { readonly t: 'left'; readonly from?: number } | RelayPunch;

/**
 * One side's part of a punch attempt (src/protocol/punch.ts): its round trip to its server, its
 * observed address, and its UDP mapping and NAT when it asked to punch (absent: it did not, and
 * answers the partner's attempts only so that the partner is told).
 */
export interface RelayPunch {
  readonly t: 'punch';
  readonly attempt: number;
  readonly rttMs: number;
  readonly observed: string;
  readonly mapping?: string;
  readonly nat?: 'independent' | 'dependent' | 'unknown';
}

/**
 * How a message reaches a partner held by another process: at most once, in order per sender. It
 * travels apart from the offers of pairing (its own channel and connections), so that relayed
 * traffic never delays a pairing.
 */
export interface RelayLink {
  relay(owner: string, to: string, message: RelayMessage): void;
  /** Whether process `owner` still takes relayed messages: false once it is gone (killed, crashed). */
  alive(owner: string): Promise<boolean>;
}
