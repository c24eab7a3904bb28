// The browser-safe entry: fetch, streams and TextDecoder only, no Node built-ins. Webhook
// verification (node:crypto) is in `@longhaul/client/node`; the CLI is the package's `bin`.
export { type ClientOptions, createClient, type EventsOptions, LonghaulClient, type WaitOptions } from './client.ts';
export * from './errors.ts';
export * from './types.ts';
