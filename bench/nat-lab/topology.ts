/**
 * The lab's small internet, built from network namespaces: a hub namespace holding a bridge is the
 * public segment 203.0.113.0/24 (a documentation range, and no link leaves it: nothing the lab sends
 * can reach a real network). pairup and coturn sit on it; each peer is in its own namespace, either on
 * the segment itself (`none`) or behind a router namespace of its own that translates with nftables.
 */
import { inNs, sh } from './shell.js';

export const BEHAVIOURS = ['none', 'eim', 'edm'] as const;
/**
 * - none: a public address, no NAT, no firewall;
 * - eim: Linux `masquerade`: endpoint-independent mapping (the source port is kept when free, and
 *   reused for every destination), address-and-port-dependent filtering (conntrack lets replies in
 *   only from the endpoint contacted);
 * - edm: `masquerade fully-random` (iptables' `--random-fully`): a fresh random port for each
 *   destination (symmetric NAT).
 */
export type Behaviour = (typeof BEHAVIOURS)[number];
export type Side = 'a' | 'b';

export interface Host {
  readonly ns: string;
  /** Its address on its own link (10.x behind a NAT). */
  readonly address: string;
}

export interface Peer extends Host {
  readonly side: Side;
  readonly behaviour: Behaviour;
  /** The address the public segment sees it as: its own, or its router's. */
  readonly publicAddress: string;
  /** Its router's namespace, if it has one. */
  readonly router?: string;
}

export interface Topology {
  readonly prefix: string;
  readonly server: Host;
  readonly turn: Host;
  readonly peers: readonly Peer[];
  peer(side: Side, behaviour: Behaviour): Peer;
}

export const SERVER_ADDRESS = '203.0.113.10';
export const TURN_ADDRESS = '203.0.113.20';
const SEGMENT_BITS = 24;

/** Last octet of a peer's public address: none .31/.32, eim .41/.42, edm .51/.52 (side a, b). */
function octet(side: Side, behaviour: Behaviour): number {
  return { none: 31, eim: 41, edm: 51 }[behaviour] + (side === 'a' ? 0 : 1);
}

/** The namespace names the lab creates start with this: its PID, so that a stale run can be told apart. */
export const prefixFor = (pid: number): string => `pairup-lab-${pid}-`;

/**
 * A router's rules. Unsolicited packets from the public side are dropped before conntrack confirms
 * them, as a home router's firewall does: without it Linux remembers the dropped inbound packet, and
 * the peer's own later packet to that sender collides with it and is given a fresh port (the
 * mapping would no longer be endpoint-independent whenever the partner's packet arrives first).
 */
function natRules(behaviour: 'eim' | 'edm'): string {
  return `table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade${behaviour === 'edm' ? ' fully-random' : ''}
  }
}
table ip filter {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state new drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "wan" ct state new drop
  }
}
`;
}

async function addNs(ns: string): Promise<void> {
  await sh('ip', ['netns', 'add', ns]);
  await sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  // IPv4 only: the lab's addresses, nothing else for ICE to try.
  await inNs(ns, 'sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
}

/** A veth pair made directly in its two namespaces: its names never touch the host's namespace. */
async function link(ns: string, name: string, peerNs: string, peerName: string): Promise<void> {
  await sh('ip', ['link', 'add', 'name', name, 'netns', ns, 'type', 'veth', 'peer', 'name', peerName, 'netns', peerNs]);
}

async function addressUp(ns: string, dev: string, cidr: string): Promise<void> {
  await sh('ip', ['-n', ns, 'addr', 'add', cidr, 'dev', dev]);
  await sh('ip', ['-n', ns, 'link', 'set', dev, 'up']);
}

/** Puts namespace `ns` on the public segment as `address`, through hub port `port`. */
async function attach(hub: string, ns: string, dev: string, port: string, address: string): Promise<void> {
  await link(ns, dev, hub, port);
  await sh('ip', ['-n', hub, 'link', 'set', port, 'master', 'br0', 'up']);
  await addressUp(ns, dev, `${address}/${SEGMENT_BITS}`);
  // A default route as real hosts have (Chromium asks the route to a public address for its own);
  // the segment has no uplink, so a packet to anything else dies there.
  await sh('ip', ['-n', ns, 'route', 'add', 'default', 'dev', dev]);
}

/**
 * Builds the whole topology under `prefix`. Every namespace is created with that prefix, so
 * {@link destroyTopology} removes all of them, also those of a build that failed half-way.
 */
export async function buildTopology(prefix: string): Promise<Topology> {
  const hub = `${prefix}hub`;
  await addNs(hub);
  await sh('ip', ['-n', hub, 'link', 'add', 'br0', 'type', 'bridge']);
  await sh('ip', ['-n', hub, 'link', 'set', 'br0', 'up']);

  const server: Host = { ns: `${prefix}pairup`, address: SERVER_ADDRESS };
  const turn: Host = { ns: `${prefix}turn`, address: TURN_ADDRESS };
  for (const [host, port] of [
    [server, 'p-pairup'],
    [turn, 'p-turn'],
  ] as const) {
    await addNs(host.ns);
    await attach(hub, host.ns, 'eth0', port, host.address);
  }

  const peers: Peer[] = [];
  for (const side of ['a', 'b'] as const) {
    for (const behaviour of BEHAVIOURS) {
      const n = octet(side, behaviour);
      const publicAddress = `203.0.113.${n}`;
      const ns = `${prefix}${side}-${behaviour}`;
      const port = `p-${side}-${behaviour}`;
      await addNs(ns);
      if (behaviour === 'none') {
        await attach(hub, ns, 'eth0', port, publicAddress);
        peers.push({ ns, address: publicAddress, side, behaviour, publicAddress });
        continue;
      }
      const router = `${ns}-nat`;
      const lan = `10.${n}.0`;
      await addNs(router);
      await attach(hub, router, 'wan', port, publicAddress);
      await link(router, 'lan', ns, 'eth0');
      await addressUp(router, 'lan', `${lan}.1/24`);
      await addressUp(ns, 'eth0', `${lan}.2/24`);
      await sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', `${lan}.1`]);
      await inNs(router, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      await inNs(router, 'nft', ['-f', '-'], { input: natRules(behaviour) });
      peers.push({ ns, address: `${lan}.2`, side, behaviour, publicAddress, router });
    }
  }
  return {
    prefix,
    server,
    turn,
    peers,
    peer(side, behaviour) {
      const found = peers.find((p) => p.side === side && p.behaviour === behaviour);
      if (found === undefined) throw new Error(`no peer ${side}-${behaviour}`);
      return found;
    },
  };
}

/** The network namespaces whose names start with `prefix`. */
export async function namespacesUnder(prefix: string): Promise<string[]> {
  const listed = await sh('ip', ['netns', 'list']);
  return listed
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(prefix));
}

/**
 * Deletes every namespace under `prefix` (their veths and nftables rules go with them). Processes
 * inside must have been stopped first: a namespace lives on while a process holds it.
 */
export async function destroyTopology(prefix: string): Promise<void> {
  for (const ns of await namespacesUnder(prefix)) {
    await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
  }
}

/** Removes what a lab run killed before its cleanup left behind: namespaces named after a PID that is gone. */
export async function removeStale(): Promise<string[]> {
  const removed: string[] = [];
  for (const ns of await namespacesUnder('pairup-lab-')) {
    const pid = Number(/^pairup-lab-(\d+)-/.exec(ns)?.[1]);
    if (!Number.isInteger(pid) || alive(pid)) continue;
    await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
    removed.push(ns);
  }
  return removed;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
