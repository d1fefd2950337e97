/**
 * Target URLs may not point into the server's own network (SSRF): a name that resolves to a
 * loopback, private, link-local, unique-local or otherwise non-public address is refused, and the
 * scheme must be https. `allowPrivate` (LOCKSTEP_TARGETS_ALLOW_PRIVATE=1, for local use and tests)
 * lifts both. Checked when a target is created and again before every request, so a name that is
 * re-pointed later (DNS rebinding between the two is still possible; a resolver pinned per request
 * would close it) is refused at delivery too.
 */
import { lookup } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';
import { validation } from '../domain/errors.ts';

export type Lookup = (host: string) => Promise<string[]>;
const systemLookup: Lookup = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

/** Only addresses ipaddr.js classifies as `unicast` are public; everything else is refused. */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  let a = ipaddr.parse(address);
  if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) a = (a as ipaddr.IPv6).toIPv4Address();
  return a.range() === 'unicast';
}

export async function checkTargetUrl(raw: unknown, opts: { allowPrivate: boolean; lookup?: Lookup }, field = 'url'): Promise<URL> {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 2048) throw validation(field, `${field} must be an absolute URL of at most 2048 characters`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw validation(field, `${field} must be an absolute URL`);
  }
  if (url.username || url.password) throw validation(field, `${field} must not carry credentials`);
  if (url.protocol !== 'https:' && !(opts.allowPrivate && url.protocol === 'http:')) throw validation(field, `${field} must use https`);
  if (opts.allowPrivate) return url;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: string[];
  try {
    addresses = ipaddr.isValid(host) ? [host] : await (opts.lookup ?? systemLookup)(host);
  } catch {
    throw validation(field, `${field}: the host '${host}' does not resolve`);
  }
  if (addresses.length === 0 || !addresses.every(isPublicAddress)) {
    throw validation(field, `${field} resolves to a loopback, private or link-local address; targets must be public (LOCKSTEP_TARGETS_ALLOW_PRIVATE=1 lifts this for local use)`);
  }
  return url;
}
