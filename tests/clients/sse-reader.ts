/**
 * A minimal Server-Sent Events reader for tests, written apart from the SDK so the tests check the
 * wire format itself: `event:`, `id:`, `data:` lines, blank-line separated; comments counted.
 */
export interface SseEvent {
  event: string;
  id: string | undefined;
  // biome-ignore lint/suspicious/noExplicitAny: test helper; tests assert on the shape
  data: any;
}

export interface SseConnection {
  status: number;
  headers: Headers;
  /** The next event; rejects after `timeoutMs` (default 10 s), resolves `null` once the stream ended. */
  next(timeoutMs?: number): Promise<SseEvent | null>;
  /** Every remaining event until the server ends the stream. */
  rest(timeoutMs?: number): Promise<SseEvent[]>;
  /** Comment lines (heartbeats) seen so far. */
  comments(): number;
  close(): void;
}

export async function openSse(
  url: string,
  key: string,
  { lastEventId }: { lastEventId?: string } = {},
): Promise<SseConnection> {
  const abort = new AbortController();
  const res = await fetch(url, {
    headers: {
      authorization: `Bearer ${key}`,
      accept: 'text/event-stream',
      ...(lastEventId ? { 'last-event-id': lastEventId } : {}),
    },
    signal: abort.signal,
  });
  const reader = res.body?.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let comments = 0;
  let ended = false;
  const queue: SseEvent[] = [];

  const parseBlocks = () => {
    let sep = buffer.indexOf('\n\n');
    while (sep >= 0) {
      const block = buffer.slice(0, sep);
      buffer = buffer.slice(sep + 2);
      let event = 'message';
      let id: string | undefined;
      const data: string[] = [];
      let hasField = false;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) comments++;
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('id: ')) id = line.slice(4);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
        if (!line.startsWith(':') && !line.startsWith('retry:')) hasField = true;
      }
      if (hasField && data.length > 0) queue.push({ event, id, data: JSON.parse(data.join('\n')) });
      sep = buffer.indexOf('\n\n');
    }
  };

  // Read in the background, so comments (heartbeats) are counted even while no one asks for events.
  let wake: (() => void) | undefined;
  void (async () => {
    try {
      for (;;) {
        const chunk = await reader?.read();
        if (!chunk || chunk.done) break;
        buffer += decoder.decode(chunk.value, { stream: true });
        parseBlocks();
        wake?.();
      }
    } catch {
      // aborted by close()
    }
    ended = true;
    wake?.();
  })();

  const next = async (timeoutMs = 10_000): Promise<SseEvent | null> => {
    const deadline = Date.now() + timeoutMs;
    while (queue.length === 0) {
      if (ended) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no SSE event within ${timeoutMs} ms`);
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      wake = undefined;
    }
    return queue.shift() ?? null;
  };

  return {
    status: res.status,
    headers: res.headers,
    next,
    async rest(timeoutMs = 20_000) {
      const all: SseEvent[] = [];
      for (let e = await next(timeoutMs); e; e = await next(timeoutMs)) all.push(e);
      return all;
    },
    comments: () => comments,
    close: () => abort.abort(),
  };
}
