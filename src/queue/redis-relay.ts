/**
 * Relayed WebSocket messages between processes sharing a Redis: one sharded pub/sub channel per
 * process (`relay:OWNER`), on connections of their own, apart from the offers of pairing
 * (redis-link.ts): megabytes of signals never queue in front of an offer or a join.
 *
 * A message is not JSON around JSON: the sender's frame goes as it came, after one header line, so
 * that it is neither escaped nor re-serialised on the way (a re-serialised `1e20` is 21 bytes).
 *   S<to>\n<frame>   a signal for waiter `to`
 *   L<to>            its partner left
 *   L<to>\n<from>    in a group: member `from` left
 *   U<to>\n<json>    its partner's part of a punch attempt (a RelayPunch, written by pairup itself)
 *   P                a probe: whether anyone listens (SPUBLISH counts the receivers)
 */
import type { RelayLink, RelayMessage, RelayPunch } from './relay-seam.js';
import type { ShardedPubSub } from './redis-link.js';

/** A punch part as another pairup process wrote it; only its known fields are kept. */
function relayPunch(json: string): RelayPunch | undefined {
  try {
    const { attempt, rttMs, observed, mapping, nat } = JSON.parse(json) as Partial<RelayPunch>;
    if (typeof attempt !== 'number' || typeof rttMs !== 'number' || typeof observed !== 'string') return undefined;
    return { t: 'punch', attempt, rttMs, observed, ...(typeof mapping === 'string' ? { mapping } : {}), ...(nat === undefined ? {} : { nat }) };
  } catch {
    return undefined;
  }
}

export class RedisRelayLink implements RelayLink {
  readonly #publisher: ShardedPubSub;
  readonly #subscriber: ShardedPubSub;
  readonly #prefix: string;
  readonly #owner: string;

  constructor(publisher: ShardedPubSub, subscriber: ShardedPubSub, options: { readonly prefix: string; readonly owner: string }) {
    this.#publisher = publisher;
    this.#subscriber = subscriber;
    this.#prefix = options.prefix;
    this.#owner = options.owner;
  }

  #channel(owner: string): string {
    return `${this.#prefix}relay:${owner}`;
  }

  /** Listens on this process's relay channel: `receive` gets each message for one of its waiters. */
  async start(receive: (to: string, message: RelayMessage) => void): Promise<void> {
    await this.#subscriber.sSubscribe(this.#channel(this.#owner), (text) => {
      const kind = text[0];
      if (kind === 'S') {
        const end = text.indexOf('\n');
        if (end > 0) receive(text.slice(1, end), { t: 'signal', text: text.slice(end + 1) });
      } else if (kind === 'L') {
        const end = text.indexOf('\n');
        const from = end > 0 ? Number(text.slice(end + 1)) : NaN;
        if (end < 0) receive(text.slice(1), { t: 'left' });
        else if (Number.isInteger(from) && from >= 0) receive(text.slice(1, end), { t: 'left', from });
      }
      else if (kind === 'U') {
        const end = text.indexOf('\n');
        const punch = end > 0 ? relayPunch(text.slice(end + 1)) : undefined;
        if (punch !== undefined) receive(text.slice(1, end), punch);
      }
    });
  }

  relay(owner: string, to: string, message: RelayMessage): void {
    const text =
      message.t === 'signal'
        ? `S${to}\n${message.text}`
        : message.t === 'punch'
          ? `U${to}\n${JSON.stringify(message)}`
          : message.from === undefined
            ? `L${to}`
            : `L${to}\n${message.from}`;
    // At most once: a message Redis could not take is lost, as one pub/sub loses.
    this.#publisher.sPublish(this.#channel(owner), text).catch(() => undefined);
  }

  /** Nobody subscribed to its channel: its process is gone (its connections closed with it). */
  async alive(owner: string): Promise<boolean> {
    return (await this.#publisher.sPublish(this.#channel(owner), 'P')) > 0;
  }

  async close(): Promise<void> {
    await this.#subscriber.sUnsubscribe(this.#channel(this.#owner)).catch(() => undefined);
  }
}
