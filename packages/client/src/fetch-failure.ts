/**
 * Why a fetch failed, with the underlying cause: Node's fetch says only "fetch failed" and keeps
 * the reason (`connect ECONNREFUSED 127.0.0.1:3000`) in `cause`, an AggregateError when the host
 * name has several addresses.
 */
export function describeFetchFailure(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const cause = err instanceof Error ? err.cause : undefined;
  if (!(cause instanceof Error)) return message;
  const reasons =
    cause instanceof AggregateError && cause.errors.length > 0
      ? cause.errors.map((e: unknown) => (e instanceof Error ? e.message : String(e)))
      : [cause.message || ((cause as { code?: string }).code ?? '')];
  const why = [...new Set(reasons.filter(Boolean))].join(', ');
  return why && !message.includes(why) ? `${message} (${why})` : message;
}
