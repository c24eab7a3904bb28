import express from 'express';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { basicAuth, parseBasic } from './basic-auth.ts';

const app = (credentials: Parameters<typeof basicAuth>[0]) =>
  express()
    .use(basicAuth(credentials))
    .get('/', (_req, res) => {
      res.send('board');
    });
const basic = (text: string) => `Basic ${Buffer.from(text).toString('base64')}`;

describe('basicAuth', () => {
  const guarded = app({ user: 'ops', password: 'pass:word-123' });

  it('when the user and password match, then the request goes through', async () => {
    const res = await request(guarded).get('/').set('authorization', basic('ops:pass:word-123'));
    expect(res.status).toBe(200);
    expect(res.text).toBe('board');
  });

  it('when nothing, a wrong password, a wrong user or another scheme is sent, then it answers 401 with a challenge', async () => {
    for (const header of [undefined, basic('ops:nope'), basic('root:pass:word-123'), basic('ops'), 'Bearer x']) {
      const req = request(guarded).get('/');
      const res = await (header ? req.set('authorization', header) : req);
      expect(res.status, String(header)).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Basic realm=/);
      expect(res.body.error.code).toBe('unauthorized');
    }
  });

  it('when no credentials are configured, then every request answers 401, even one with credentials, and no prompt is sent', async () => {
    const closed = app(null);
    for (const header of [undefined, basic(':'), basic('admin:admin')]) {
      const req = request(closed).get('/');
      const res = await (header ? req.set('authorization', header) : req);
      expect(res.status).toBe(401);
      expect(res.headers['www-authenticate']).toBeUndefined();
      expect(res.body.error.message).toMatch(/ADMIN_USER and ADMIN_PASSWORD/);
    }
  });

  it('when the header is parsed, then the password may contain colons and the user may not', () => {
    expect(parseBasic(basic('a:b:c'))).toEqual({ user: 'a', password: 'b:c' });
    expect(parseBasic('Basic !!!')).toBeUndefined();
    expect(parseBasic(undefined)).toBeUndefined();
  });
});
