/**
 * The webhook sink: each event POSTed on its own, in id order, signed per Standard Webhooks with the
 * `standardwebhooks` package: `webhook-id` (the event id, the same on every attempt, so a receiver
 * tells a repeat), `webhook-timestamp` (this attempt, in seconds) and `webhook-signature`
 * (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, keyed by WEBHOOK_SECRET). The body is the envelope.
 * A 2xx within the timeout is a delivery; anything else stops the batch there (see relay.ts).
 */
import { Webhook } from "standardwebhooks";
import { envelopeJson, type StoredEvent } from "../domain/events.ts";
import type { Delivery, Sink } from "./relay.ts";

export interface WebhookTarget {
  url: string;
  /** `whsec_…` */
  secret: string;
  timeoutMs: number;
}

export class WebhookSink implements Sink {
  readonly name = "webhook";
  /**
   * One event's share of the thread while requests wait: signing (the package's HMAC is JavaScript:
   * ≈ 20 µs of it) and one fetch. 93–100 µs of this process's CPU alone (3 × 3,000 events to
   * load/webhook-receiver.ts); under load, in `--cpu-prof` profiles of `bun run bench --events`, 80 µs
   * (SQLite orders) and 150 µs (PostgreSQL claims, where every layer ran 30 % slower than with events
   * off). The larger, so that the relay's share is a bound (see relay.ts), until the relay has measured
   * what it costs on the machine it runs on.
   */
  readonly costUs = 150;
  private readonly signer: Webhook;

  constructor(private readonly target: WebhookTarget) {
    this.signer = new Webhook(target.secret);
  }

  async deliver(events: readonly StoredEvent[], signal: AbortSignal): Promise<Delivery> {
    for (const [i, event] of events.entries()) {
      const id = String(event.id);
      const body = envelopeJson(event);
      // Signed anew for each attempt: receivers refuse old timestamps (Standard Webhooks: 5 minutes).
      const at = new Date();
      // Stopped between two events: the abort has fired already, and nothing would cut this attempt short.
      if (signal.aborted) return { delivered: i, error: signal.reason };
      // The timeout is a timer cleared once the answer is read: AbortSignal.timeout's would stay armed
      // for the whole timeout after every delivery (after a drain of 20,000 events, 20,000 timers
      // firing over the next 5 s while requests are being served).
      const attempt = new AbortController();
      const abort = () => attempt.abort(signal.reason);
      const timer = setTimeout(
        () => attempt.abort(new Error(`no answer within ${this.target.timeoutMs} ms`)),
        this.target.timeoutMs,
      );
      signal.addEventListener("abort", abort, { once: true });
      try {
        const response = await fetch(this.target.url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "user-agent": "flashcart-webhooks",
            "webhook-id": id,
            "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
            "webhook-signature": this.signer.sign(id, at, body),
          },
          body,
          redirect: "manual",
          signal: attempt.signal,
        });
        // Read to the end, so the connection goes back to the pool for the next event.
        await response.arrayBuffer();
        if (response.status < 200 || response.status > 299) {
          return { delivered: i, error: new Error(`${this.target.url} answered ${response.status}`) };
        }
      } catch (error) {
        return { delivered: i, error };
      } finally {
        clearTimeout(timer);
        signal.removeEventListener("abort", abort);
      }
    }
    return { delivered: events.length, error: null };
  }

  async close(): Promise<void> {}
}
