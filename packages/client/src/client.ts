import { ApiError, ConnectionError, errorFromResponse, LonghaulError, UnexpectedResponseError } from './errors.ts';
import { readJobEvents } from './event-stream.ts';
import { describeFetchFailure } from './fetch-failure.ts';
import { sleep } from './sleep.ts';
import {
  type AnalysisInput,
  type AnalysisName,
  type AnalysisResult,
  type ChildPage,
  type ChildrenQuery,
  FINAL_STATUSES,
  type JobEvent,
  type JobPage,
  type JobResult,
  type JobView,
  type ListQuery,
  type ScheduleCreate,
  type ScheduleListQuery,
  type SchedulePage,
  type ScheduleUpdate,
  type ScheduleView,
  type SubmitOptions,
} from './types.ts';

/** `?k=v&…` of the fields that are set, or '' when none is. */
function queryString(query: object): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
  return params.size > 0 ? `?${params}` : '';
}

export interface ClientOptions {
  /** The API's base URL, e.g. `https://longhaul.example.com`. */
  baseUrl: string;
  /** A tenant's API key, sent as `Authorization: Bearer <key>`. */
  apiKey: string;
  /** Per-request timeout for everything but event streams. @defaultValue 30000 */
  timeoutMs?: number;
  /** A fetch implementation. @defaultValue globalThis.fetch */
  fetch?: typeof fetch;
}

export interface EventsOptions {
  /** Resume after this event id (sent as `Last-Event-ID`). */
  lastEventId?: string;
  signal?: AbortSignal;
  /** Give up after this many reconnects in a row that deliver nothing. @defaultValue 5 */
  maxReconnects?: number;
}

export interface WaitOptions {
  /** Stops waiting; `waitFor` then rejects with the signal's reason (an `AbortError` unless you gave one). */
  signal?: AbortSignal;
  /** Called with every event while the job runs (or each polled view, as a `snapshot`, when polling). */
  onEvent?: (event: JobEvent) => void;
  /** Poll interval once the event stream has failed. @defaultValue 1000 */
  pollIntervalMs?: number;
}

/**
 * A typed client for the longhaul HTTP API. Inputs and results are typed by the analysis name,
 * from the same contracts the server validates with.
 */
export class LonghaulClient {
  readonly baseUrl: string;
  readonly #apiKey: string;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor({ baseUrl, apiKey, timeoutMs = 30_000, fetch: fetchImpl = globalThis.fetch }: ClientOptions) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.#apiKey = apiKey;
    this.#timeoutMs = timeoutMs;
    // Never called as a method: browsers throw "Illegal invocation" when fetch's `this` is not the window.
    this.#fetch = (input, init) => fetchImpl(input, init);
  }

  async #request<T>(
    method: string,
    path: string,
    body?: unknown,
    init: { headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<T> {
    const url = `${this.baseUrl}${path}`;
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const signal = init.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    const failure = (err: unknown): unknown => {
      // The caller's own abort is theirs to recognise (an AbortError, or the reason they gave),
      // not a connection problem: ConnectionError promises the API was not reached in time.
      if (init.signal?.aborted) return init.signal.reason;
      const why = timeout.aborted ? `no answer within ${this.#timeoutMs} ms` : describeFetchFailure(err);
      return new ConnectionError(`${method} ${url} failed: ${why}`, { cause: err });
    };
    let res: Response;
    let text: string;
    try {
      res = await this.#fetch(url, {
        method,
        signal,
        headers: {
          authorization: `Bearer ${this.#apiKey}`,
          accept: 'application/json',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...init.headers,
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      if (!res.ok) throw await errorFromResponse(res);
      // The body can be cut by the timeout, an abort or the network as the request can.
      text = await res.text();
    } catch (err) {
      throw err instanceof ApiError ? err : failure(err);
    }
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      // A proxy's page, or a web app's fallback answering every path: not the API at all.
      const type = res.headers.get('content-type');
      throw new UnexpectedResponseError(
        `the server at ${this.baseUrl} is not a longhaul API: ${method} ${path} answered ${res.status} ${type ?? 'without a content type'}, expected JSON`,
        res.status,
        type,
        { cause: err },
      );
    }
  }

  /** Submits a job; resolves with its view (status `queued` or `delayed`). */
  submit<N extends AnalysisName>(type: N, input: AnalysisInput<N>, opts: SubmitOptions = {}): Promise<JobView> {
    const { idempotencyKey, signal, ...rest } = opts;
    return this.#request<JobView>(
      'POST',
      '/v1/jobs',
      { type, input, ...rest },
      {
        ...(idempotencyKey ? { headers: { 'idempotency-key': idempotencyKey } } : {}),
        ...(signal ? { signal } : {}),
      },
    );
  }

  /** The job view: status, progress, attempts, error, webhook deliveries. */
  get(id: string): Promise<JobView> {
    return this.#request<JobView>('GET', `/v1/jobs/${encodeURIComponent(id)}`);
  }

  /** The result of a completed job; a {@link ConflictError} (`not_completed`) before that. */
  result<N extends AnalysisName = AnalysisName>(id: string): Promise<JobResult<AnalysisResult<N>>> {
    return this.#request('GET', `/v1/jobs/${encodeURIComponent(id)}/result`);
  }

  /** Cancels a queued or running job; a {@link ConflictError} (`already_finished`) when it is over. */
  cancel(id: string): Promise<JobView> {
    return this.#request<JobView>('DELETE', `/v1/jobs/${encodeURIComponent(id)}`);
  }

  /** A page of the tenant's jobs, newest first. */
  list(query: ListQuery = {}): Promise<JobPage> {
    return this.#request<JobPage>('GET', `/v1/jobs${queryString(query)}`);
  }

  /** A page of the children a job started (fan-out), in order, each with its view. */
  children(id: string, query: ChildrenQuery = {}): Promise<ChildPage> {
    return this.#request<ChildPage>('GET', `/v1/jobs/${encodeURIComponent(id)}/children${queryString(query)}`);
  }

  /**
   * Recurring analyses: each run is an ordinary job of the tenant, listed with
   * `list({ schedule: id })`.
   */
  readonly schedules = {
    /** Creates a schedule (`cron` or `everyMs`); resolves with its view. */
    create: <N extends AnalysisName>(schedule: ScheduleCreate<N>): Promise<ScheduleView> =>
      this.#request<ScheduleView>('POST', '/v1/schedules', schedule),
    /** Every schedule of the tenant, oldest first: the pages of {@link page} one after another. */
    list: async (): Promise<ScheduleView[]> => {
      const all: ScheduleView[] = [];
      let cursor: string | undefined;
      do {
        const page = await this.schedules.page(cursor === undefined ? {} : { cursor });
        all.push(...page.schedules);
        cursor = page.nextCursor ?? undefined;
      } while (cursor !== undefined);
      return all;
    },
    /** A page of the tenant's schedules, oldest first. */
    page: (query: ScheduleListQuery = {}): Promise<SchedulePage> =>
      this.#request<SchedulePage>('GET', `/v1/schedules${queryString(query)}`),
    get: (id: string): Promise<ScheduleView> =>
      this.#request<ScheduleView>('GET', `/v1/schedules/${encodeURIComponent(id)}`),
    /** Pauses or resumes, retimes, or changes the input. */
    update: (id: string, change: ScheduleUpdate): Promise<ScheduleView> =>
      this.#request<ScheduleView>('PATCH', `/v1/schedules/${encodeURIComponent(id)}`, change),
    pause: (id: string): Promise<ScheduleView> => this.schedules.update(id, { paused: true }),
    resume: (id: string): Promise<ScheduleView> => this.schedules.update(id, { paused: false }),
    /** Deletes the schedule; runs already made stay readable. Resolves with its last view. */
    delete: (id: string): Promise<ScheduleView> =>
      this.#request<ScheduleView>('DELETE', `/v1/schedules/${encodeURIComponent(id)}`),
  };

  /**
   * The job's live events: a `snapshot`, then `status` and `progress`, and one final `completed`,
   * `failed` or `cancelled`, after which the iteration ends. Reconnects by itself (with
   * `Last-Event-ID`) when the connection drops; each reconnect begins with a fresh `snapshot`, which
   * covers what happened meanwhile (a `reset` after it says the server could not check what was
   * missed: the snapshot is still the current state).
   */
  events(id: string, opts: EventsOptions = {}): AsyncGenerator<JobEvent> {
    return readJobEvents({
      url: `${this.baseUrl}/v1/jobs/${encodeURIComponent(id)}/events`,
      headers: { authorization: `Bearer ${this.#apiKey}` },
      fetch: this.#fetch,
      ...opts,
    });
  }

  /**
   * Resolves with the job's final view (completed, failed or cancelled; check `status`). Follows
   * the event stream, and falls back to polling when the stream cannot be had.
   */
  async waitFor(id: string, { signal, onEvent, pollIntervalMs = 1_000 }: WaitOptions = {}): Promise<JobView> {
    try {
      for await (const event of this.events(id, signal ? { signal } : {})) {
        onEvent?.(event);
        if (event.type === 'completed' || event.type === 'failed' || event.type === 'cancelled') {
          // A final event sent without the view (its record was unreadable) still ends the wait.
          return 'attempts' in event.data ? event.data : await this.get(id);
        }
      }
    } catch (err) {
      // Not found, gone, unauthorized: polling would answer the same.
      if (err instanceof ApiError && err.status !== 503 && err.status !== 429 && err.status < 500) throw err;
      if (!(err instanceof LonghaulError)) throw err;
    }
    while (!signal?.aborted) {
      const view = await this.#request<JobView>('GET', `/v1/jobs/${encodeURIComponent(id)}`, undefined, {
        ...(signal ? { signal } : {}),
      });
      onEvent?.({ type: 'snapshot', data: view });
      if (FINAL_STATUSES.includes(view.status)) return view;
      await sleep(pollIntervalMs, signal);
    }
    // As fetch does: the caller's abort, not a failure of the API (an AbortError unless they gave a reason).
    throw signal.reason;
  }
}

/** `new LonghaulClient(options)`. */
export function createClient(options: ClientOptions): LonghaulClient {
  return new LonghaulClient(options);
}
