/**
 * How processes sharing a Redis reach each other to pair: one sharded pub/sub channel per process (SPUBLISH,
 * Redis 7: in a Redis Cluster a channel lives on one shard, and the count of receivers a publish
 * returns is exact there too). A process that claimed another's waiter publishes an offer on the
 * owner's channel and waits for its answer on its own. Pub/sub is at most once: an answer that does
 * not come in time is `unanswered`, and the claim record in Redis decides (see Lobby#confirmRemote).
 * No receiver at all means the owner is gone: its waiter can never be answered.
 */
import type { GroupOffer, MatchOffer, PeerLink, Waiter } from './seam.js';

/** What the link needs of a node-redis client or cluster. */
export interface ShardedPubSub {
  sPublish(channel: string, message: string): Promise<number>;
  sSubscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
  sUnsubscribe(channel: string): Promise<unknown>;
}

/** How long a claimer waits for the owner's answer, at most (less when its client's time runs out first). */
export const OFFER_TIMEOUT_MS = 2000;

type Answer = 'matched' | 'ready' | 'gone' | 'unanswered';
type Message =
  | { readonly t: 'offer'; readonly r: number; readonly from: string; readonly id: string; readonly offer: MatchOffer }
  | { readonly t: 'answer'; readonly r: number; readonly answer: 'matched' | 'ready' | 'gone' }
  /** A group being formed asks whether its member `id` is still there (and holds it). */
  | { readonly t: 'hold'; readonly r: number; readonly from: string; readonly id: string; readonly offer: GroupOffer }
  /** The fate of group `g`, for its member `id` held there. */
  | { readonly t: 'decide'; readonly id: string; readonly g: string; readonly d: 'commit' | 'release' };

/** What this process does with what other processes send it. */
export interface LinkHandlers {
  /** Another process claimed this one's waiter `id`: commit it if its client is still there. */
  offered(id: string, offer: MatchOffer): Promise<'matched' | 'gone'>;
  /** Another process forms a group with this one's waiter `id`: hold it if its client is still there. */
  held?(id: string, offer: GroupOffer): 'ready' | 'gone';
  /** Word of the fate of the group this one's waiter `id` is held for. */
  decided?(id: string, groupId: string, decision: 'commit' | 'release'): void;
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
      if (message.t === 'decide') {
        handlers.decided?.(message.id, message.g, message.d);
        return;
      }
      if (message.t === 'hold') {
        const answer = handlers.held?.(message.id, message.offer) ?? 'gone';
        this.#publisher.sPublish(this.#channel(message.from), JSON.stringify({ t: 'answer', r: message.r, answer })).catch(onError);
        return;
      }
      handlers.offered(message.id, message.offer).then(
        (answer) => this.#publisher.sPublish(this.#channel(message.from), JSON.stringify({ t: 'answer', r: message.r, answer })),
        onError,
      ).catch(onError);
    });
  }

  offer(peer: Waiter, offer: MatchOffer, waitMs: number): Promise<'matched' | 'gone' | 'unanswered'> {
    return this.#ask(peer, { t: 'offer', r: ++this.#requests, from: this.#owner, id: peer.id, offer }, waitMs) as Promise<'matched' | 'gone' | 'unanswered'>;
  }

  hold(member: Waiter, offer: GroupOffer, waitMs: number): Promise<'ready' | 'gone' | 'unanswered'> {
    return this.#ask(member, { t: 'hold', r: ++this.#requests, from: this.#owner, id: member.id, offer }, waitMs) as Promise<'ready' | 'gone' | 'unanswered'>;
  }

  decide(member: Waiter, groupId: string, decision: 'commit' | 'release'): void {
    const message: Message = { t: 'decide', id: member.id, g: groupId, d: decision };
    // At most once: a member's process that hears nothing asks the group's record itself.
    this.#publisher.sPublish(this.#channel(member.owner), JSON.stringify(message)).catch(() => undefined);
  }

  #ask(peer: Waiter, message: Extract<Message, { r: number; from: string }>, waitMs: number): Promise<Answer> {
    const { r } = message;
    return new Promise<Answer>((resolve) => {
      const done = (answer: Answer): void => {
        if (!this.#pending.delete(r)) return;
        clearTimeout(timer);
        resolve(answer);
      };
      const timer = setTimeout(() => done('unanswered'), Math.max(0, Math.min(OFFER_TIMEOUT_MS, waitMs)));
      this.#pending.set(r, done);
      this.#publisher.sPublish(this.#channel(peer.owner), JSON.stringify(message)).then(
        // Nobody listening on that channel: its process is gone, and nobody can ever answer that waiter.
        (receivers) => {
          if (receivers === 0) done('gone');
        },
        () => done('unanswered'),
      );
    });
  }

  async close(): Promise<void> {
    for (const done of [...this.#pending.values()]) done('unanswered');
    await this.#subscriber.sUnsubscribe(this.#channel(this.#owner)).catch(() => undefined);
  }
}
