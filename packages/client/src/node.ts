// `@longhaul/client/node`: what only a server needs. The worker signs webhooks with this same
// code; it is bundled in at build time, so the package depends on no server code.
export {
  EVENT_ID_HEADER,
  SIGNATURE_HEADER,
  signWebhook,
  type VerifyOptions,
  verifyWebhook,
  WebhookSignatureError,
  type WebhookSignatureFailure,
} from '@longhaul/shared/webhook-signature';
