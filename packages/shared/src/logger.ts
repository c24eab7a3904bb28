import { type Logger, type LoggerOptions, pino } from 'pino';

export type { Logger };

/**
 * Paths never written to a log: credentials, and job inputs (which may hold customer data).
 * pino's redaction is applied at serialisation, so a value logged by mistake is still hidden.
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
];

export interface LoggerConfig {
  level: string;
  pretty: boolean;
  name: string;
}

export function createLogger({ level, pretty, name }: LoggerConfig): Logger {
  const options: LoggerOptions = {
    name,
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    base: { service: name },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (pretty) {
    return pino({
      ...options,
      transport: {
        target: 'pino-pretty',
        options: { translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' },
      },
    });
  }
  return pino(options);
}
