// One signing implementation for the worker and every receiver: node:crypto only, no server code.
export {
  EVENT_ID_HEADER,
  SIGNATURE_HEADER,
  signWebhook,
  type VerifyOptions,
  verifyWebhook,
  WebhookSignatureError,
  type WebhookSignatureFailure,
} from '@longhaul/shared/webhook-signature';
export { type ClientOptions, createClient, type EventsOptions, LonghaulClient, type WaitOptions } from './client.ts';
export * from './errors.ts';
export * from './types.ts';
