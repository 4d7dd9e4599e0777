/** The words of `openMesh()`: its options, the mesh it resolves to, its members and their events. */

export interface MeshOptions {
  readonly pool?: string;
  readonly code?: string;
  /** Members of the group, this page included: 2 to the server's MAX_GROUP_SIZE (8 by default). */
  readonly size: number;
  /** The fewest members the group may form with once its oldest waited FILL_WAIT_MS (2 to `size`). */
  readonly min?: number;
  /** A JSON object for the other members (each one's `meta`). */
  readonly meta?: Record<string, unknown>;
  /** The app's key, for a server with app keys (`?key=` on the WebSocket). */
  readonly key?: string;
  /** How long to wait for the group in all; default 60000 ms; `Infinity` waits until it forms or `signal` aborts. */
  readonly timeoutMs?: number;
  /** How long each member's data channel may take to open once the group formed; default 20000 ms. */
  readonly connectTimeoutMs?: number;
  /** ICE servers; default: the match's `iceServers` (pairup's own STUN responder, and TURN relays when the server has them). */
  readonly iceServers?: RTCIceServer[];
  /** Whether to tell the server how each member's connection went (`connected` or `failed`, with `to`); default true. */
  readonly reportOutcome?: boolean;
  /** Only candidates this accepts are sent to the other members (tests keep loopback ones alone). */
  readonly filterCandidate?: (candidate: RTCIceCandidate) => boolean;
  /** Told of each step of each member's connection (`offer sent`, ICE states, `channel open`, …). */
  readonly onStep?: (member: number, step: string) => void;
  /**
   * Called once the group formed, before any channel opened, with the mesh that `openMesh` will
   * resolve to (its members all `connecting`): listeners added here hear each channel open and each
   * member leave as it happens.
   */
  readonly onMatched?: (mesh: Mesh) => void;
  /** Ends it all: before the mesh is ready `openMesh` rejects with the signal's reason; after, the mesh closes. */
  readonly signal?: AbortSignal;
}

/**
 * How a member stands: its channel is being opened, is open, never opened (negotiation failed or
 * timed out), or the member left (the server said so, or its open channel closed).
 */
export type MemberState = 'connecting' | 'open' | 'failed' | 'left';

export interface MeshMember {
  /** Its place in the group (0 waited longest). */
  readonly index: number;
  /** Its address as the server saw it. */
  readonly address: string;
  /** What it chose to share (null: nothing). */
  readonly meta: Record<string, unknown> | null;
  readonly state: MemberState;
  /** Its data channel, once open (authenticated by the group's secret); undefined before and after. */
  readonly channel: RTCDataChannel | undefined;
  /** Straight to it, or through a TURN relay, once known. */
  readonly via: 'direct' | 'relay' | undefined;
}

/** Why a member is gone: the server said it left, its open channel closed, or its channel never opened. */
export type LeaveReason = 'peer_left' | 'closed' | 'failed';

export type MessageData = string | ArrayBuffer | Blob;

export interface MeshEvents {
  /** A member's channel opened, authenticated (before `openMesh` resolves: listen from `onMatched`). */
  open: (member: MeshMember) => void;
  /** A message from a member, in the order it sent them. Messages that came before any listener wait for the first. */
  message: (member: MeshMember, data: MessageData) => void;
  /** A member is gone, once per member. */
  leave: (member: MeshMember, reason: LeaveReason) => void;
}

/** A group whose members are connected each to each by a data channel: what `openMesh` resolves to. */
export interface Mesh {
  readonly matchId: string;
  /** This page's index in the group. */
  readonly self: number;
  /** Members of the group as it formed, this page included. */
  readonly size: number;
  /** Every other member, by index. */
  readonly members: ReadonlyMap<number, MeshMember>;
  /** Listens; returns the function that stops listening. */
  on<K extends keyof MeshEvents>(type: K, listener: MeshEvents[K]): () => void;
  /** Sends to one member: false when its channel is not open. */
  send(to: number, data: MessageData): boolean;
  /** Sends to every member whose channel is open: how many that was. */
  sendAll(data: MessageData): number;
  /** Leaves: closes every channel, connection and the socket. Idempotent. */
  close(): void;
}
