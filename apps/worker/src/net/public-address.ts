import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { Agent } from 'undici';

/** The setting that lets outbound requests of one kind reach non-public addresses. */
export type AllowPrivateSetting = 'WEBHOOK_ALLOW_PRIVATE' | 'DATASET_ALLOW_PRIVATE';

/**
 * A URL whose host resolves to an address outbound requests may not reach (SSRF guard). The
 * message reaches the tenant (job view, delivery record), so it names the rule and the setting,
 * never the address the name resolved to: that would map the internal network for an attacker.
 * `host`, `address` and `range` are for the worker's own (debug) log.
 */
export class ForbiddenAddressError extends Error {
  constructor(
    readonly host: string,
    readonly address: string,
    readonly range: string,
    readonly setting: AllowPrivateSetting,
  ) {
    super(
      `the URL resolves to a private, loopback or other non-public address, which is not allowed (${setting} is off)`,
    );
    this.name = 'ForbiddenAddressError';
  }
}

/** The range an IP address falls in, as ipaddr.js names it (`unicast` for a public address). */
export function addressRange(address: string): string {
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  }
  return parsed.range();
}

/** Loopback, private, link-local, unique-local, multicast, reserved…: anything but public unicast. */
export function isPublicAddress(address: string): boolean {
  return addressRange(address) === 'unicast';
}

/**
 * A DNS lookup that fails for non-public addresses. Used as the socket's `lookup`, so the check
 * applies to the address actually connected to, after resolution, on every redirect hop: a
 * hostname that resolves to 127.0.0.1 (or rebinds to it) is refused as surely as the literal IP.
 */
export function guardedLookup(allowPrivate: boolean, setting: AllowPrivateSetting): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const list = addresses as LookupAddress[];
      for (const a of list) {
        if (!allowPrivate && !isPublicAddress(a.address)) {
          return callback(new ForbiddenAddressError(hostname, a.address, addressRange(a.address), setting), '', 0);
        }
      }
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list);
      const first = list[0];
      if (!first) return callback(new Error(`no address for ${hostname}`), '', 0);
      callback(null, first.address, first.family);
    });
  };
}

/**
 * An undici dispatcher for outbound HTTP (webhooks) that refuses non-public
 * addresses unless `allowPrivate`. Literal IPs skip DNS, so they are checked here too.
 */
export function createGuardedDispatcher({
  allowPrivate,
  setting = 'WEBHOOK_ALLOW_PRIVATE',
  connectTimeoutMs = 10_000,
}: {
  allowPrivate: boolean;
  /** The setting a refusal names. Default `WEBHOOK_ALLOW_PRIVATE` (webhooks use this dispatcher). */
  setting?: AllowPrivateSetting;
  connectTimeoutMs?: number;
}): Agent {
  const lookup = guardedLookup(allowPrivate, setting);
  return new Agent({
    connect: {
      timeout: connectTimeoutMs,
      lookup,
    },
    connections: 64,
  });
}

/** Checks a URL before any request: scheme http(s), and a literal IP host must be public. */
export function assertFetchableUrl(raw: string, allowPrivate: boolean, setting: AllowPrivateSetting): URL {
  const url = new URL(raw);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`only http and https URLs are allowed`);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (ipaddr.isValid(host) && !allowPrivate && !isPublicAddress(host)) {
    throw new ForbiddenAddressError(host, host, addressRange(host), setting);
  }
  return url;
}
