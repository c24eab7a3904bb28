/**
 * Log redaction, compiled once from paths in pino's syntax: `a`, `a.b.c`, `a["b-c"]` and `*.b`
 * (any top-level key, then `b`). It gives the lines pino's own `redact` option gives for the same
 * paths (a test holds the two equal), at a fraction of the cost: pino 10's redaction
 * (@pinojs/redact) parses every path again for every key of every line and copies what it
 * searches, which was two thirds of a log line's CPU, and a job writes two lines and a child
 * logger's bindings (bench/results.md).
 *
 * What it does, as pino does: a top-level path replaces the key's value, whatever it is; a deeper
 * path replaces a key's value when the key is there (even with `undefined`), and searches only plain
 * objects (not arrays) on the way. An object is copied only where a key in it is replaced: the
 * caller's object is never changed.
 */

export const CENSOR = '[redacted]';

interface Node {
  /** Keys replaced by {@link CENSOR} in an object at this place. */
  censor: string[];
  /** Keys searched further, and what to look for in their values. */
  children: Map<string, Node>;
}

const emptyNode = (): Node => ({ censor: [], children: new Map() });

/** `a.b["c-d"]` → `['a', 'b', 'c-d']`. Throws on what it cannot read, so no path is silently ignored. */
export function parseRedactPath(path: string): string[] {
  const parts: string[] = [];
  const segment = /\.?([A-Za-z_$][\w$-]*|\*)|\[(?:"([^"]*)"|'([^']*)')\]/y;
  let at = 0;
  while (at < path.length) {
    segment.lastIndex = at;
    const match = segment.exec(path);
    if (!match || (at === 0 && match[0].startsWith('.'))) throw new Error(`cannot read the redact path "${path}"`);
    parts.push(match[1] ?? match[2] ?? match[3] ?? '');
    at = segment.lastIndex;
  }
  if (parts.length === 0) throw new Error('an empty redact path');
  if (parts.slice(1).includes('*')) throw new Error(`a wildcard is read only first in a redact path: "${path}"`);
  return parts;
}

function insert(node: Node, parts: readonly string[]): void {
  const [key = '', ...rest] = parts;
  if (rest.length === 0) {
    if (!node.censor.includes(key)) node.censor.push(key);
    return;
  }
  let child = node.children.get(key);
  if (!child) {
    child = emptyNode();
    node.children.set(key, child);
  }
  insert(child, rest);
}

function merge(into: Node, from: Node): void {
  for (const key of from.censor) if (!into.censor.includes(key)) into.censor.push(key);
  for (const [key, child] of from.children) {
    let mine = into.children.get(key);
    if (!mine) {
      mine = emptyNode();
      into.children.set(key, mine);
    }
    merge(mine, child);
  }
}

/** A replaced key is not searched: its value is gone. */
function prune(node: Node): void {
  for (const key of node.censor) node.children.delete(key);
  for (const child of node.children.values()) prune(child);
}

const isPlainRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function redactIn(value: Record<string, unknown>, node: Node): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const key of node.censor) {
    if (!Object.hasOwn(value, key)) continue;
    out ??= { ...value };
    out[key] = CENSOR;
  }
  for (const [key, child] of node.children) {
    const inner = value[key];
    if (!isPlainRecord(inner) || !Object.hasOwn(value, key)) continue;
    const redacted = redactIn(inner, child);
    if (redacted === inner) continue;
    out ??= { ...value };
    out[key] = redacted;
  }
  return out ?? value;
}

/**
 * A function that returns the object with every path redacted (the same object when nothing is),
 * and `prepare(key, value)` applied to each top-level value first (pino's serialisers run before
 * its redaction: an error is serialised, then redacted).
 */
export function compileRedaction(
  paths: readonly string[],
  prepare: (key: string, value: unknown) => unknown = (_key, value) => value,
): (obj: Record<string, unknown>) => Record<string, unknown> {
  const top = new Set<string>();
  const literal = emptyNode();
  const wildcard = emptyNode();
  for (const path of paths) {
    const parts = parseRedactPath(path);
    if (parts.length === 1) top.add(parts[0] ?? '');
    else if (parts[0] === '*') insert(wildcard, parts.slice(1));
    else insert(literal, parts);
  }
  // A top-level key named by a path of its own also matches the wildcard's paths.
  const byKey = new Map<string, Node>();
  for (const [key, node] of literal.children) {
    if (top.has(key)) continue;
    merge(node, wildcard);
    prune(node);
    byKey.set(key, node);
  }
  prune(wildcard);

  return (obj) => {
    let out: Record<string, unknown> | undefined;
    for (const key in obj) {
      if (!Object.hasOwn(obj, key)) continue;
      const value = obj[key];
      if (value === undefined) continue;
      let next: unknown;
      if (top.has(key)) next = CENSOR;
      else {
        next = prepare(key, value);
        if (isPlainRecord(next)) next = redactIn(next, byKey.get(key) ?? wildcard);
      }
      if (next === value) continue;
      out ??= { ...obj };
      out[key] = next;
    }
    return out ?? obj;
  };
}
