/**
 * The relay between two matched WebSocket clients: a message for a partner is addressed to the
 * partner's waiter id in the partner's process. In this process it is handed to the partner's
 * endpoint at once; in another (a shared backend), it goes over the backend's link to that process.
 *
 * An endpoint is attached by its socket's session when it is matched and detached when it ends.
 * Across processes a message can arrive a moment before its endpoint is attached (the partner's
 * process heard of the match later): such messages are held, a few and briefly, then dropped.
 */
import type { RelayMessage, RelayLink } from '../queue/seam.js';

/** What is held for an endpoint not yet attached, and for how long. */
const EARLY_MESSAGES = 64;
const EARLY_MS = 5000;
const EARLY_ENDPOINTS = 10_000;

export class RelayHub {
  readonly #owner: string;
  readonly #link: RelayLink | undefined;
  readonly #endpoints = new Map<string, (message: RelayMessage) => void>();
  readonly #early = new Map<string, { readonly messages: RelayMessage[]; readonly timer: NodeJS.Timeout }>();

  constructor(owner: string, link?: RelayLink) {
    this.#owner = owner;
    this.#link = link;
  }

  /** Delivers messages for waiter `id` of this process to `deliver` until the returned function is called. */
  attach(id: string, deliver: (message: RelayMessage) => void): () => void {
    this.#endpoints.set(id, deliver);
    const early = this.#early.get(id);
    if (early !== undefined) {
      this.#early.delete(id);
      clearTimeout(early.timer);
      for (const message of early.messages) deliver(message);
    }
    return () => {
      if (this.#endpoints.get(id) === deliver) this.#endpoints.delete(id);
    };
  }

  /** Sends to waiter `id` of process `owner`. At most once: a message for an endpoint that is gone is dropped. */
  send(owner: string, id: string, message: RelayMessage): void {
    if (owner === this.#owner) this.receive(id, message);
    else this.#link?.relay(owner, id, message);
  }

  /** A message for waiter `id` of this process (from this process, or from another over the link). */
  receive(id: string, message: RelayMessage): void {
    const deliver = this.#endpoints.get(id);
    if (deliver !== undefined) {
      deliver(message);
      return;
    }
    let early = this.#early.get(id);
    if (early === undefined) {
      if (this.#early.size >= EARLY_ENDPOINTS) return;
      const timer = setTimeout(() => this.#early.delete(id), EARLY_MS);
      timer.unref();
      this.#early.set(id, (early = { messages: [], timer }));
    }
    if (early.messages.length < EARLY_MESSAGES) early.messages.push(message);
  }

  close(): void {
    for (const { timer } of this.#early.values()) clearTimeout(timer);
    this.#early.clear();
    this.#endpoints.clear();
  }
}
