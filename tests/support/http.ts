/**
 * Default type of a response body. Tests assert on bodies rather than trust them, so reading
 * `res.body.error.code` without a cast is the point; pass a type argument where it helps.
 */
// biome-ignore lint/suspicious/noExplicitAny: see above, test helper only
export type Body = any;

export interface ApiResponse<T = Body> {
  status: number;
  /** Response headers, names lower-cased. */
  headers: Record<string, string>;
  /** Parsed JSON when the body is JSON, else the text ('' when empty). */
  body: T;
}

export interface RequestOptions {
  body?: unknown;
  headers?: Record<string, string>;
  /** Abort after this long. Default 10 s. */
  timeoutMs?: number;
}

/** One HTTP request with global fetch; a JSON body is serialised and the JSON answer parsed. */
export async function request<T = Body>(
  method: string,
  url: string,
  { body, headers = {}, timeoutMs = 10_000 }: RequestOptions = {},
): Promise<ApiResponse<T>> {
  const init: RequestInit = { method, headers: { ...headers }, signal: AbortSignal.timeout(timeoutMs) };
  if (body !== undefined) {
    const isRaw = typeof body === 'string' || body instanceof Uint8Array;
    init.body = isRaw ? (body as string | Uint8Array) : JSON.stringify(body);
    if (!isRaw && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) {
      (init.headers as Record<string, string>)['content-type'] = 'application/json';
    }
  }
  const res = await fetch(url, init);
  const text = await res.text();
  let parsed: unknown = text;
  if (text && (res.headers.get('content-type') ?? '').includes('json')) {
    try {
      parsed = JSON.parse(text);
    } catch {
      // keep the text: a test asserting on a broken JSON body wants to see it
    }
  }
  return { status: res.status, headers: Object.fromEntries(res.headers), body: parsed as T };
}

export interface ApiClient {
  get<T = Body>(path: string, opts?: RequestOptions): Promise<ApiResponse<T>>;
  post<T = Body>(path: string, body?: unknown, opts?: RequestOptions): Promise<ApiResponse<T>>;
  delete<T = Body>(path: string, opts?: RequestOptions): Promise<ApiResponse<T>>;
  request<T = Body>(method: string, path: string, opts?: RequestOptions): Promise<ApiResponse<T>>;
}

/**
 * A tiny client for the longhaul API at `baseUrl`, sending `Authorization: Bearer <key>` when a
 * key is given. `api(url, key).post('/v1/jobs', { type, input })` → `{ status, headers, body }`.
 */
export function api(baseUrl: string, key?: string): ApiClient {
  const base = baseUrl.replace(/\/+$/, '');
  const send = <T>(method: string, path: string, opts: RequestOptions = {}) =>
    request<T>(method, `${base}${path}`, {
      ...opts,
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...opts.headers },
    });
  return {
    get: (path, opts) => send('GET', path, opts),
    post: (path, body, opts) => send('POST', path, { ...opts, body }),
    delete: (path, opts) => send('DELETE', path, opts),
    request: (method, path, opts) => send(method.toUpperCase(), path, opts),
  };
}
