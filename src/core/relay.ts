/**
 * The relay between matched WebSocket clients (a pair, or the members of a group): a message for a
 * partner is addressed to the partner's waiter id in the partner's process. In this process it is handed to the partner's
 * endpoint at once; in another (a shared backend), it goes over the backend's link to that process.
 *
 * An endpoint is attached by its socket's session when it is matched and detached when it ends.
 * Across processes a message can arrive a moment before its endpoint is attached (the partner's
 * process heard of the match later): such messages are held, a few and briefly, then dropped.
 *
 * A partner's process that dies cannot say its client left: every {@link PROBE_MS} the hub asks
 * whether each process its endpoints' partners are on still listens, and tells those endpoints
 * `left` (in a group, once for each member that process held) when one does not.
 */
import type { RelayMessage, RelayLink } from '../queue/relay-seam.js';

/** What is held for an endpoint not yet attached, and for how long. */
const EARLY_MESSAGES = 64;
const EARLY_MS = 5000;
const EARLY_ENDPOINTS = 10_000;
/** How often the processes of remote partners are asked whether they are still there. */
export const PROBE_MS = 2000;

/** Who an endpoint relays with: a pair's partner, or one other member of a group (its index). */
export interface RelayPartner {
  /** The process holding it. */
  readonly owner: string;
  readonly index?: number;
}

interface Endpoint {
  readonly deliver: (message: RelayMessage) => void;
  readonly partners: readonly RelayPartner[];
}

export class RelayHub {
  readonly #owner: string;
  readonly #link: RelayLink | undefined;
  readonly #endpoints = new Map<string, Endpoint>();
  readonly #early = new Map<string, { readonly messages: RelayMessage[]; readonly timer: NodeJS.Timeout }>();
  /** Endpoints whose partner another process holds, by that process. */
  readonly #remote = new Map<string, Set<string>>();
  #probe: NodeJS.Timeout | undefined;

  constructor(owner: string, link?: RelayLink) {
    this.#owner = owner;
    this.#link = link;
  }

  /**
   * Delivers messages for waiter `id` of this process, which relays with `partners`, to `deliver`
   * until the returned function is called.
   */
  attach(id: string, partners: readonly RelayPartner[], deliver: (message: RelayMessage) => void): () => void {
    const endpoint: Endpoint = { deliver, partners };
    this.#endpoints.set(id, endpoint);
    const processes: string[] = [];
    if (this.#link !== undefined) for (const { owner } of partners) if (owner !== this.#owner && !processes.includes(owner)) processes.push(owner);
    for (const process of processes) {
      let ids = this.#remote.get(process);
      if (ids === undefined) this.#remote.set(process, (ids = new Set()));
      ids.add(id);
      if (this.#probe === undefined) {
        this.#probe = setInterval(this.#probeRemotes, PROBE_MS);
        this.#probe.unref();
      }
    }
    const early = this.#early.get(id);
    if (early !== undefined) {
      this.#early.delete(id);
      clearTimeout(early.timer);
      for (const message of early.messages) deliver(message);
    }
    return () => {
      if (this.#endpoints.get(id) !== endpoint) return;
      this.#endpoints.delete(id);
      for (const process of processes) {
        const ids = this.#remote.get(process);
        if (ids === undefined) continue;
        ids.delete(id);
        if (ids.size === 0) this.#remote.delete(process);
      }
      if (this.#remote.size === 0) {
        clearInterval(this.#probe);
        this.#probe = undefined;
      }
    };
  }

  /** One question per remote process, not per pair; a process found gone is `left` for each of its partners here. */
  readonly #probeRemotes = (): void => {
    const link = this.#link;
    if (link === undefined) return;
    for (const process of this.#remote.keys()) {
      link.alive(process).then(
        (alive) => {
          if (alive) return;
          for (const id of [...(this.#remote.get(process) ?? [])]) {
            const endpoint = this.#endpoints.get(id);
            for (const partner of endpoint?.partners ?? []) {
              if (partner.owner !== process) continue;
              endpoint?.deliver(partner.index === undefined ? { t: 'left' } : { t: 'left', from: partner.index });
            }
          }
        },
        // The backend unreachable is not a partner gone: asked again next time.
        () => undefined,
      );
    }
  };

  /** Sends to waiter `id` of process `owner`. At most once: a message for an endpoint that is gone is dropped. */
  send(owner: string, id: string, message: RelayMessage): void {
    if (owner === this.#owner) this.receive(id, message);
    else this.#link?.relay(owner, id, message);
  }

  /** A message for waiter `id` of this process (from this process, or from another over the link). */
  receive(id: string, message: RelayMessage): void {
    const endpoint = this.#endpoints.get(id);
    if (endpoint !== undefined) {
      endpoint.deliver(message);
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
    clearInterval(this.#probe);
    this.#probe = undefined;
    this.#remote.clear();
    for (const { timer } of this.#early.values()) clearTimeout(timer);
    this.#early.clear();
    this.#endpoints.clear();
  }
}
