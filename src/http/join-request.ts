/**
 * Who a request's client is, as the lobby takes it: its limit key, its address as its partner is told
 * it, where that came from, and its connection. One reader for the match routes and the WebSocket.
 */
import type { JoinRequest } from '../core/types.js';
import { clientAddressOf, formatAddress, limitKey, type ProxyTrust } from '../net/address.js';
import { connectionId } from './connection.js';
import type { AnyRequest } from './types.js';

export type ClientFields = Pick<JoinRequest, 'limitKey' | 'address' | 'via' | 'connection'>;

/** Made once per route: the trusted proxies are compiled once, not per request. */
export function clientReader(options: { readonly proxyProtocol: boolean; readonly trustProxy: ProxyTrust; readonly ipv6PrefixBits: number }): (request: AnyRequest) => ClientFields {
  // With PROXY protocol the connection's address is already the client's: X-Forwarded-For is never read.
  const clientAddress = clientAddressOf(options.proxyProtocol ? false : options.trustProxy);
  const { ipv6PrefixBits } = options;
  return (request) => {
    const { ip, via } = clientAddress(request.socket.remoteAddress ?? '', request.headers['x-forwarded-for']);
    return {
      limitKey: limitKey(ip, ipv6PrefixBits),
      address: formatAddress(ip, request.socket.remotePort ?? 0),
      via,
      connection: connectionId(request.raw),
    };
  };
}
