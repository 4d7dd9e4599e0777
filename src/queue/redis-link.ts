/**
 * How processes sharing a Redis reach each other: one sharded pub/sub channel per process (SPUBLISH,
 * Redis 7: in a Redis Cluster a channel lives on one shard, and the count of receivers a publish
 * returns is exact there too). A process that claimed another's waiter publishes an offer on the
 * owner's channel and waits for its answer on its own. Pub/sub is at most once: an answer that does
 * not come in time is `unanswered`, and the claim record in Redis decides (see Lobby#confirmRemote).
 * No receiver at all means the owner is gone: its waiter can never be answered.
 */
import type { MatchOffer, PeerLink, RelayMessage, Waiter } from './seam.js';

/** What the link needs of a node-redis client or cluster. */
export interface ShardedPubSub {
  sPublish(channel: string, message: string): Promise<number>;
  sSubscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
  sUnsubscribe(channel: string): Promise<unknown>;
}

/** How long a claimer waits for the owner's answer. */
export const OFFER_TIMEOUT_MS = 2000;

type Answer = 'matched' | 'gone' | 'unanswered';
type Message =
  | { readonly t: 'offer'; readonly r: number; readonly from: string; readonly id: string; readonly offer: MatchOffer }
  | { readonly t: 'answer'; readonly r: number; readonly answer: 'matched' | 'gone' }
  | { readonly t: 'relay'; readonly to: string; readonly m: RelayMessage };

/** What this process does with what other processes send it. */
export interface LinkHandlers {
  /** Another process claimed this one's waiter `id`: commit it if its client is still there. */
  offered(id: string, offer: MatchOffer): Promise<'matched' | 'gone'>;
  /** A relayed message for this process's waiter `to`. */
  relayed(to: string, message: RelayMessage): void;
}

export class RedisPeerLink implements PeerLink {
  readonly #publisher: ShardedPubSub;
  readonly #subscriber: ShardedPubSub;
  readonly #prefix: string;
  readonly #owner: string;
  readonly #pending = new Map<number, (answer: Answer) => void>();
  #requests = 0;

  constructor(publisher: ShardedPubSub, subscriber: ShardedPubSub, options: { readonly prefix: string; readonly owner: string }) {
    this.#publisher = publisher;
    this.#subscriber = subscriber;
    this.#prefix = options.prefix;
    this.#owner = options.owner;
  }

  #channel(owner: string): string {
    return `${this.#prefix}process:${owner}`;
  }

  /** Listens on this process's channel; `onOffer` answers offers for its waiters. */
  async start(handlers: LinkHandlers, onError: (error: unknown) => void): Promise<void> {
    await this.#subscriber.sSubscribe(this.#channel(this.#owner), (text) => {
      let message: Message;
      try {
        message = JSON.parse(text) as Message;
      } catch (error) {
        onError(error);
        return;
      }
      if (message.t === 'answer') {
        this.#pending.get(message.r)?.(message.answer);
        return;
      }
      if (message.t === 'relay') {
        handlers.relayed(message.to, message.m);
        return;
      }
      handlers.offered(message.id, message.offer).then(
        (answer) => this.#publisher.sPublish(this.#channel(message.from), JSON.stringify({ t: 'answer', r: message.r, answer })),
        onError,
      ).catch(onError);
    });
  }

  offer(peer: Waiter, offer: MatchOffer): Promise<Answer> {
    const r = ++this.#requests;
    return new Promise<Answer>((resolve) => {
      const done = (answer: Answer): void => {
        if (!this.#pending.delete(r)) return;
        clearTimeout(timer);
        resolve(answer);
      };
      const timer = setTimeout(() => done('unanswered'), OFFER_TIMEOUT_MS);
      this.#pending.set(r, done);
      const message: Message = { t: 'offer', r, from: this.#owner, id: peer.id, offer };
      this.#publisher.sPublish(this.#channel(peer.owner), JSON.stringify(message)).then(
        // Nobody listening on that channel: its process is gone, and nobody can ever answer that waiter.
        (receivers) => {
          if (receivers === 0) done('gone');
        },
        () => done('unanswered'),
      );
    });
  }

  relay(owner: string, to: string, m: RelayMessage): void {
    const message: Message = { t: 'relay', to, m };
    // At most once: a message Redis could not take is lost, as one pub/sub loses.
    this.#publisher.sPublish(this.#channel(owner), JSON.stringify(message)).catch(() => undefined);
  }

  async close(): Promise<void> {
    for (const done of [...this.#pending.values()]) done('unanswered');
    await this.#subscriber.sUnsubscribe(this.#channel(this.#owner)).catch(() => undefined);
  }
}
