/**
 * `openDataChannel()`: a WebRTC data channel to the partner of a WebSocket match, negotiated over the
 * relay, authenticated with the match secret, and reported to the server (direct or relayed).
 */
import { PairupError } from './errors.js';
import type { PeerChannel } from './peer-channel.js';

export interface DataChannelOptions {
  /** ICE servers; default: the match's `iceServers` (pairup's own STUN responder, and TURN relays when the server has them). */
  readonly iceServers?: RTCIceServer[];
  /** Whether to tell the server how the connection went (`connected` direct or relay, or `failed`); default true. */
  readonly reportOutcome?: boolean;
  /** Only candidates this accepts are sent to the partner (tests keep loopback ones alone). */
  readonly filterCandidate?: (candidate: RTCIceCandidate) => boolean;
  /** Told of each step: `offer sent`, `answer sent`, the ICE connection state, `channel open`. */
  readonly onStep?: (step: string) => void;
  /** How long the whole negotiation may take; default 20000 ms. */
  readonly timeoutMs?: number;
  /** Ends the negotiation: the connection is closed and the promise rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /**
   * Called with the channel as soon as the partner showed the secret, before the promise resolves
   * (which waits for the connection's statistics): a listener added here misses no message.
   */
  readonly onAuthenticated?: (channel: RTCDataChannel) => void;
}

/** The data channel, once both sides proved they hold the match's secret. */
export interface PeerDataChannel {
  readonly channel: RTCDataChannel;
  readonly connection: RTCPeerConnection;
  /** How it goes: straight to the partner, or through a TURN relay (either end's candidate a relay one). */
  readonly via: 'direct' | 'relay';
}

/** Whether the connection's selected candidate pair goes through a TURN relay. */
async function viaOf(connection: RTCPeerConnection): Promise<'direct' | 'relay'> {
  const stats = await connection.getStats();
  let pairId: string | undefined;
  stats.forEach((entry: { type: string; selectedCandidatePairId?: string }) => {
    if (entry.type === 'transport' && entry.selectedCandidatePairId !== undefined) pairId = entry.selectedCandidatePairId;
  });
  const pair = pairId === undefined ? undefined : (stats.get(pairId) as { localCandidateId?: string; remoteCandidateId?: string } | undefined);
  const typeOf = (id: string | undefined) => (id === undefined ? undefined : (stats.get(id) as { candidateType?: string } | undefined)?.candidateType);
  return typeOf(pair?.localCandidateId) === 'relay' || typeOf(pair?.remoteCandidateId) === 'relay' ? 'relay' : 'direct';
}

type Negotiation = { kind: 'description'; description: RTCSessionDescriptionInit } | { kind: 'candidate'; candidate: RTCIceCandidateInit };

/**
 * Opens a WebRTC data channel to the partner of a WebSocket match: the newcomer (`initiator:
 * false`) makes the offer, ICE candidates trickle over the relay, and the first message each side
 * sends on the channel is the match's secret, which the other checks before the channel is handed
 * over (a channel whose partner cannot show it is closed).
 */
export function openDataChannel(peer: PeerChannel, options: DataChannelOptions = {}): Promise<PeerDataChannel> {
  const step = options.onStep ?? (() => undefined);
  const connection = new RTCPeerConnection({ iceServers: options.iceServers ?? peer.match.iceServers });
  const report = options.reportOutcome ?? true;
  const filter = options.filterCandidate ?? (() => true);
  const pending: RTCIceCandidateInit[] = [];
  let described = false;
  return new Promise<PeerDataChannel>((resolve, reject) => {
    let settled = false;
    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      connection.close();
      if (report) peer.report({ via: 'failed' });
      reject(error);
    };
    const timer = setTimeout(() => fail(new PairupError(0, 'negotiation_timeout', 'the data channel did not open in time')), options.timeoutMs ?? 20_000);
    const onAbort = (): void => fail(options.signal?.reason as Error);
    if (options.signal?.aborted === true) onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    connection.addEventListener('icecandidate', (event) => {
      if (event.candidate !== null && event.candidate.candidate !== '' && filter(event.candidate)) {
        peer.send({ kind: 'candidate', candidate: event.candidate.toJSON() } satisfies Negotiation);
      }
    });
    connection.addEventListener('iceconnectionstatechange', () => step(`ICE ${connection.iceConnectionState}`));
    const authenticate = (channel: RTCDataChannel): void => {
      channel.addEventListener('open', () => {
        step('channel open');
        channel.send(JSON.stringify({ pairup: 'hello', secret: peer.match.secret }));
      });
      const onFirst = (event: MessageEvent): void => {
        channel.removeEventListener('message', onFirst);
        let hello: { pairup?: unknown; secret?: unknown } = {};
        try {
          hello = JSON.parse(String(event.data)) as typeof hello;
        } catch {
          // not a hello at all
        }
        if (hello.pairup !== 'hello' || hello.secret !== peer.match.secret) {
          channel.close();
          fail(new PairupError(0, 'bad_secret', 'the partner did not show the match secret'));
          return;
        }
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        step('partner authenticated');
        options.onAuthenticated?.(channel);
        const ms = performance.now() - peer.matchedAt;
        void viaOf(connection)
          .catch(() => 'direct' as const)
          .then((via) => {
            step(`connected ${via}`);
            if (report) peer.report({ via, ms });
            resolve({ channel, connection, via });
          });
      };
      channel.addEventListener('message', onFirst);
    };
    peer.onSignal = (data) => {
      const message = data as Negotiation;
      if (message.kind === 'candidate') {
        if (described) void connection.addIceCandidate(message.candidate).catch(() => undefined);
        else pending.push(message.candidate);
        return;
      }
      void (async () => {
        await connection.setRemoteDescription(message.description);
        described = true;
        for (const candidate of pending.splice(0)) await connection.addIceCandidate(candidate).catch(() => undefined);
        if (message.description.type === 'offer') {
          await connection.setLocalDescription(await connection.createAnswer());
          peer.send({ kind: 'description', description: connection.localDescription?.toJSON() as RTCSessionDescriptionInit } satisfies Negotiation);
          step('answer sent');
        }
      })().catch((error: unknown) => fail(error as Error));
    };
    if (peer.match.initiator) {
      // The waiter answers: its channel comes from the newcomer.
      connection.addEventListener('datachannel', (event) => authenticate(event.channel));
      step('waiting for the offer');
    } else {
      authenticate(connection.createDataChannel('pairup'));
      void (async () => {
        await connection.setLocalDescription(await connection.createOffer());
        peer.send({ kind: 'description', description: connection.localDescription?.toJSON() as RTCSessionDescriptionInit } satisfies Negotiation);
        step('offer sent');
      })().catch((error: unknown) => fail(error as Error));
    }
  });
}
