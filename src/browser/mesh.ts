/**
 * `openMesh()`: a group of N over pairup's WebSocket, then one WebRTC data channel to each other
 * member (a full mesh): the lower index makes the offer (a member offers to each index in its
 * `offerTo` and answers the others), each pair's signals go through the server addressed by index,
 * and each channel is authenticated by the group's secret, as `openDataChannel` does for a pair.
 */
import type { Match } from '../protocol/index.js';
import { openDataChannel } from './data-channel.js';
import { PairupError } from './errors.js';
import { joinGroup, type GroupAnswer, type GroupRelay } from './group-relay.js';
import type { LeaveReason, Mesh, MeshEvents, MeshMember, MeshOptions, MemberState, MessageData } from './mesh-types.js';
import type { PeerChannel } from './peer-channel.js';

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 20_000;

/** A member as the mesh keeps it (the page sees it through MeshMember, read-only). */
interface Member {
  readonly index: number;
  readonly address: string;
  readonly meta: Record<string, unknown> | null;
  state: MemberState;
  channel: RTCDataChannel | undefined;
  connection: RTCPeerConnection | undefined;
  via: 'direct' | 'relay' | undefined;
  /** Ends this member's negotiation. */
  readonly abort: AbortController;
  /** The relay as `openDataChannel` sees it: a pair of this page and this member. */
  readonly peer: PeerChannel;
}

type Listeners = { [K in keyof MeshEvents]: Set<MeshEvents[K]> };

/**
 * Joins a group of `size` over `serverUrl`'s WebSocket, and opens a data channel to every other
 * member. Resolves once every other member is settled: its channel open, failed (it did not open
 * within `connectTimeoutMs`, or the member did not show the secret) or the member left; the members'
 * `state` says which. Rejects with a PairupError when the server refuses the join (its code:
 * `invalid_size`, `key_required`, `code_used`, …), when no group formed within `timeoutMs`
 * (`408 timeout`), when no member's channel opened at all (`mesh_failed`), or when the mesh was
 * closed before (`closed`, from `onMatched`); with the signal's reason when it aborts first, and with
 * what `onMatched` threw. Whatever it opened is closed when it rejects.
 */
export async function openMesh(serverUrl: string | URL, options: MeshOptions): Promise<Mesh> {
  const relay = await joinGroup({
    url: serverUrl,
    size: options.size,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    ...pick(options, ['pool', 'code', 'min', 'meta', 'key', 'signal']),
  });
  return connectMembers(relay, options);
}

/** The options that are set, alone (JSON and exactOptionalPropertyTypes want no `undefined`s). */
function pick<T extends object, K extends keyof T>(from: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const picked: Partial<Pick<T, K>> = {};
  for (const key of keys) if (from[key] !== undefined) picked[key] = from[key];
  return picked;
}

/** What `openDataChannel` needs to know of a member: the group's match as if the two were a pair. */
function pairMatch(match: GroupAnswer, member: GroupAnswer['members'][number]): Match {
  return {
    matchId: match.matchId,
    ...(match.pool === undefined ? {} : { pool: match.pool }),
    ...(match.code === undefined ? {} : { code: match.code }),
    secret: match.secret,
    self: match.self.address,
    peer: member.address,
    via: member.via,
    portIsSource: member.portIsSource,
    // `initiator` waits for the offer: every member this one does not offer to.
    initiator: !match.offerTo.includes(member.index),
    waitedMs: match.waitedMs,
    iceServers: match.iceServers,
    peerMeta: member.meta,
  };
}

function connectMembers(relay: GroupRelay, options: MeshOptions): Promise<Mesh> {
  const { match } = relay;
  const listeners: Listeners = { open: new Set(), message: new Set(), leave: new Set() };
  /** Messages that came before any `message` listener: the first one added gets them, in order. */
  const held: [MeshMember, MessageData][] = [];
  const members = new Map<number, Member>();
  let ready = false;
  let closed = false;
  /** Resolves or rejects `openMesh` once no member is connecting (set below, in the promise). */
  let settle = (): void => undefined;
  let rejectEarly: (error: Error) => void = () => undefined;

  const emit = <K extends keyof MeshEvents>(type: K, ...args: Parameters<MeshEvents[K]>): void => {
    for (const listener of listeners[type]) (listener as (...a: Parameters<MeshEvents[K]>) => void)(...args);
  };
  const deliver = (member: Member, data: MessageData): void => {
    if (closed || member.state === 'left' || member.state === 'failed') return;
    if (listeners.message.size === 0) held.push([member, data]);
    else emit('message', member, data);
  };

  const close = (): void => {
    if (closed) return;
    closed = true;
    if (!ready) {
      ready = true;
      rejectEarly(new PairupError(0, 'closed', 'the mesh was closed before its channels opened'));
    }
    options.signal?.removeEventListener('abort', onAbort);
    relay.close();
    for (const member of members.values()) {
      if (member.state === 'connecting' || member.state === 'open') member.state = 'left';
      end(member);
    }
    held.length = 0;
    for (const set of Object.values(listeners)) set.clear();
  };
  /** Everything of one member's connection, closed; its channel forgotten. */
  const end = (member: Member): void => {
    member.abort.abort(new PairupError(0, 'closed', 'the member is gone'));
    member.channel?.close();
    member.connection?.close();
    member.channel = undefined;
  };
  const gone = (member: Member, reason: LeaveReason): void => {
    if (closed || member.state === 'left' || member.state === 'failed') return;
    member.state = reason === 'failed' ? 'failed' : 'left';
    end(member);
    emit('leave', member, reason);
    settle();
  };

  const mesh: Mesh = {
    matchId: match.matchId,
    self: match.self.index,
    size: match.size,
    members,
    on(type, listener) {
      const set = listeners[type] as Set<typeof listener>;
      set.add(listener);
      if (type === 'message' && held.length > 0) {
        queueMicrotask(() => {
          for (const [member, data] of held.splice(0)) emit('message', member, data);
        });
      }
      return () => void set.delete(listener);
    },
    send(to, data) {
      const channel = members.get(to)?.channel;
      if (channel?.readyState !== 'open') return false;
      // One of send()'s overloads takes each of these; TypeScript picks none for the union.
      channel.send(data as string);
      return true;
    },
    sendAll(data) {
      let sent = 0;
      for (const index of members.keys()) if (mesh.send(index, data)) sent++;
      return sent;
    },
    close,
  };

  /** Before the mesh is ready, an abort rejects `openMesh`; after, it closes the mesh. */
  const onAbort = (): void => {
    if (!ready) {
      ready = true;
      rejectEarly(options.signal?.reason as Error);
    }
    close();
  };

  return new Promise<Mesh>((resolve, reject) => {
    rejectEarly = reject;
    settle = () => {
      if (ready || [...members.values()].some((member) => member.state === 'connecting')) return;
      ready = true;
      if ([...members.values()].some((member) => member.state === 'open')) {
        resolve(mesh);
        return;
      }
      const failed = [...members.values()].filter((member) => member.state === 'failed').length;
      close();
      reject(new PairupError(0, 'mesh_failed', `no member's data channel opened (${failed} failed, ${members.size - failed} left)`));
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });

    relay.onSignal = (from, data) => members.get(from)?.peer.onSignal?.(data);
    // The server is the word on a member whose channel is not open yet. An open channel is its own
    // word: the server also says peer_left when a member's relay ends (RELAY_IDLE_MS with no
    // signal, RELAY_TTL_MS), which does not end a data channel; a member that leaves closes it.
    relay.onLeft = (index) => {
      const member = members.get(index);
      if (member !== undefined && member.state === 'connecting') gone(member, 'peer_left');
    };

    for (const other of match.members) {
      const member: Member = {
        index: other.index,
        address: other.address,
        meta: other.meta,
        state: 'connecting',
        channel: undefined,
        connection: undefined,
        via: undefined,
        abort: new AbortController(),
        peer: {
          match: pairMatch(match, other),
          matchedAt: relay.matchedAt,
          // Each link counted by the server; not one whose member left before it opened (no NAT's doing).
          report: (outcome) => {
            if (member.state === 'connecting') relay.report(other.index, outcome);
          },
          send: (data) => relay.send(other.index, data),
          onSignal: undefined,
          onEnd: undefined,
          close: () => undefined,
        },
      };
      members.set(other.index, member);
    }
    try {
      options.onMatched?.(mesh);
    } catch (error) {
      ready = true;
      reject(error instanceof Error ? error : new Error(String(error)));
      close();
      return;
    }
    for (const member of members.values()) {
      // onMatched may have closed it already.
      if (closed) break;
      const step = options.onStep;
      openDataChannel(member.peer, {
        timeoutMs: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
        signal: member.abort.signal,
        ...pick(options, ['iceServers', 'filterCandidate', 'reportOutcome']),
        ...(step === undefined ? {} : { onStep: (text: string) => step(member.index, text) }),
        onAuthenticated(channel) {
          member.channel = channel;
          channel.addEventListener('message', (event: MessageEvent) => deliver(member, event.data as MessageData));
          channel.addEventListener('close', () => gone(member, 'closed'));
        },
      }).then(
        ({ connection, via }) => {
          if (member.state !== 'connecting') {
            connection.close();
            return;
          }
          member.connection = connection;
          member.via = via;
          member.state = 'open';
          connection.addEventListener('connectionstatechange', () => {
            if (connection.connectionState === 'failed' || connection.connectionState === 'closed') gone(member, 'closed');
          });
          emit('open', member);
          settle();
        },
        () => gone(member, 'failed'),
      );
    }
    if (options.signal?.aborted === true) onAbort();
    else settle();
  });
}
