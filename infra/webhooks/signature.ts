// Webhook request signing: HMAC-SHA256 over "<timestamp>.<body>" with the webhook's secret.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Buffer } from 'node:buffer';

/** Header names every delivery carries. */
export const WEBHOOK_HEADERS = {
  delivery: 'X-Devicetrail-Delivery',
  event: 'X-Devicetrail-Event',
  webhook: 'X-Devicetrail-Webhook',
  attempt: 'X-Devicetrail-Attempt',
  timestamp: 'X-Devicetrail-Timestamp',
  signature: 'X-Devicetrail-Signature',
} as const;

/** `sha256=<hex>` of HMAC-SHA256(secret, `${timestamp}.${body}`). */
export function signWebhook(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** What a receiver does: recompute and compare in constant time. */
export function verifyWebhookSignature(secret: string, timestamp: string, body: string, signature: string): boolean {
  const expected = Buffer.from(signWebhook(secret, timestamp, body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/** A new random signing secret, for webhooks registered without one. */
export const generateWebhookSecret = (): string => `whsec_${randomBytes(32).toString('base64url')}`;
