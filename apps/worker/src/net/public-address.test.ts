import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertFetchableUrl,
  createGuardedDispatcher,
  ForbiddenAddressError,
  isPublicAddress,
} from './public-address.ts';

describe('the outbound address guard', () => {
  it('when an address is loopback, private, link-local or unique-local, then it is not public', () => {
    for (const a of [
      '127.0.0.1',
      '10.1.2.3',
      '172.16.0.1',
      '192.168.1.1',
      '169.254.169.254',
      '::1',
      'fc00::1',
      'fe80::1',
      '::ffff:127.0.0.1',
      '0.0.0.0',
    ]) {
      expect(isPublicAddress(a), a).toBe(false);
    }
    expect(isPublicAddress('93.184.216.34')).toBe(true);
    expect(isPublicAddress('2606:4700::1111')).toBe(true);
  });

  it('when a URL names a private IP or another scheme, then it is refused before any request', () => {
    const S = 'DATASET_ALLOW_PRIVATE';
    expect(() => assertFetchableUrl('http://169.254.169.254/latest', false, S)).toThrow(ForbiddenAddressError);
    expect(() => assertFetchableUrl('http://[::1]:8080/', false, S)).toThrow(ForbiddenAddressError);
    expect(() => assertFetchableUrl('file:///etc/passwd', false, S)).toThrow(/http and https/);
    expect(assertFetchableUrl('http://127.0.0.1/', true, S).hostname).toBe('127.0.0.1');
  });

  it('when a URL is refused, then the message names the rule and the setting, never the address', () => {
    let err: unknown;
    try {
      assertFetchableUrl('http://10.1.2.3/x', false, 'WEBHOOK_ALLOW_PRIVATE');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ForbiddenAddressError);
    const message = (err as Error).message;
    expect(message).toMatch(/private, loopback or other non-public address, which is not allowed/);
    expect(message).toMatch(/WEBHOOK_ALLOW_PRIVATE/);
    expect(message).not.toMatch(/10\.1\.2\.3/);
    // The worker's own log still gets where it led.
    expect(err).toMatchObject({ address: '10.1.2.3', range: 'private' });
  });

  describe('against a real local server', () => {
    const server = createServer((_req, res) => res.end('ok'));
    let port = 0;
    beforeAll(async () => {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('when a hostname resolves to loopback, then the connection is refused after DNS resolution', async () => {
      const dispatcher = createGuardedDispatcher({ allowPrivate: false });
      const err = await fetch(`http://localhost:${port}/`, { dispatcher }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(Error);
      const cause = String((err as Error & { cause?: unknown }).cause);
      expect(cause).toMatch(/non-public address, which is not allowed \(WEBHOOK_ALLOW_PRIVATE is off\)/);
      expect(cause).not.toMatch(/127\.0\.0\.1|::1/);
      await dispatcher.close();
    });

    it('when private addresses are allowed, then the same request goes through', async () => {
      const dispatcher = createGuardedDispatcher({ allowPrivate: true });
      const res = await fetch(`http://localhost:${port}/`, { dispatcher });
      expect(await res.text()).toBe('ok');
      await dispatcher.close();
    });
  });
});
