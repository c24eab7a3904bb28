import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';
import { compileRedaction } from './log-redaction.ts';
import { traceIds } from './telemetry.ts';

export type { Logger };

/**
 * Paths never written to a log: credentials, and job inputs (which may hold customer data).
 * Applied to every line and every child logger's bindings as pino's `redact` option would
 * (log-redaction.ts), so a value logged by mistake is still hidden.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["idempotency-key"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'authorization',
  'apiKey',
  'password',
  'secret',
  'redisUrl',
  'input',
  'data.input',
  'job.data',
  '*.apiKey',
  '*.password',
  '*.secret',
  '*.input',
  // Job results, checkpoint state and webhook targets (whose query strings often carry tokens).
  'result',
  '*.result',
  'returnvalue',
  'checkpoint',
  '*.checkpoint',
  'webhook',
  '*.webhook',
  'webhookUrl',
  '*.webhookUrl',
  'err.command',
  'err.args',
];

/** Error properties never logged: ioredis puts the command and its arguments (job data, URLs) there. */
const ERROR_DROPPED = new Set(['command', 'args', 'data', 'input', 'returnvalue']);

/** A serialised error's copy without {@link ERROR_DROPPED}, into `cause` and `errors` too. */
function scrubError(value: unknown, depth = 0): unknown {
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => scrubError(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (ERROR_DROPPED.has(key)) continue;
    // A refused MULTI's queued errors: their messages only (each one carries its command).
    if (key === 'previousErrors' && Array.isArray(v)) out[key] = v.map((e) => (e instanceof Error ? e.message : '?'));
    else out[key] = scrubError(v, depth + 1);
  }
  return out;
}

/**
 * pino's error serialiser without what ioredis and BullMQ attach to their errors: an ioredis
 * error carries `command: { name, args }`, and those args are the job's data, result or webhook
 * URL. The message and stack stay.
 */
export function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return scrubError(err);
  return scrubError(pino.stdSerializers.err(err));
}

export interface LoggerConfig {
  level: string;
  pretty: boolean;
  name: string;
  /** Adds the active span's `trace_id` and `span_id` to every line. Give it `telemetry.enabled`. */
  traceIds?: boolean;
}

/** The last millisecond {@link isoTime} formatted, and its text. */
const isoTimeOf = { ms: Number.NaN, text: '' };

/**
 * pino's `isoTime`, formatted once per millisecond: a busy worker writes several lines in each
 * (two per job), and `toISOString` was about 2 µs of every line in a drain's profile.
 */
export function isoTime(): string {
  const now = Date.now();
  if (now !== isoTimeOf.ms) {
    isoTimeOf.ms = now;
    isoTimeOf.text = `,"time":"${new Date(now).toISOString()}"`;
  }
  return isoTimeOf.text;
}

/** pino's `redact: { paths: REDACT_PATHS }`, compiled once; an `err` is serialised before it is redacted. */
const redact = compileRedaction(REDACT_PATHS, (key, value) => (key === 'err' ? serializeError(value) : value));

/**
 * The service's logger: JSON lines on standard output (or `destination`), redacted, with ISO
 * times; `pretty` for a terminal.
 */
export function createLogger(
  { level, pretty, name, traceIds: correlate = false }: LoggerConfig,
  destination?: DestinationStream,
): Logger {
  const options: LoggerOptions = {
    name,
    level,
    formatters: { log: redact },
    // An object interpolated into the message (`log.info('%o', obj)`) is redacted too, as pino's
    // `redact` option would.
    hooks: {
      logMethod(args, method) {
        for (let i = typeof args[0] === 'string' ? 1 : 2; i < args.length; i++) {
          const arg: unknown = args[i];
          if (typeof arg === 'object' && arg !== null && !Array.isArray(arg)) {
            args[i] = redact(arg as Record<string, unknown>);
          }
        }
        method.apply(this, args);
      },
    },
    serializers: { err: serializeError },
    base: { service: name },
    timestamp: isoTime,
    ...(correlate ? { mixin: traceIds } : {}),
  };
  const transport = {
    target: 'pino-pretty',
    options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' },
  };
  const logger = pretty ? pino({ ...options, transport }) : destination ? pino(options, destination) : pino(options);
  return redactingChildren(logger);
}

/**
 * A child's bindings are redacted too. pino gives a child no `formatters.bindings` of its parent,
 * so the root's `child` is wrapped; children inherit the wrapper (pino makes each child with
 * `Object.create(parent)`), so theirs are too.
 */
function redactingChildren(logger: Logger): Logger {
  const child = logger.child;
  logger.child = function redactedChild(this: Logger, bindings, childOptions) {
    return child.call(this, redact(bindings), childOptions);
  } as Logger['child'];
  return logger;
}
