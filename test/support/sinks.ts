/**
 * The relay's counterparts for tests: a webhook receiver that checks every signature with the
 * `standardwebhooks` package, as a data platform would, and a private JetStream stream on the NATS
 * server at TEST_NATS_URL (default nats://127.0.0.1:4222), read back message by message.
 */
import { randomBytes } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { Webhook } from "standardwebhooks";

export const TEST_NATS_URL = process.env.TEST_NATS_URL ?? "nats://127.0.0.1:4222";

/** A fresh Standard Webhooks secret. */
export function webhookSecret(): string {
  return `whsec_${randomBytes(32).toString("base64")}`;
}

export interface Received {
  webhookId: string;
  timestamp: number;
  body: string;
  /** The signature checked out for this body, id and timestamp. */
  valid: boolean;
  /** What the receiver answered. */
  status: number;
}

export interface Receiver {
  url: string;
  /** Every request, in arrival order, answered or not. */
  received: Received[];
  /** The bodies answered 2xx, parsed, in arrival order. */
  accepted(): { id: number; type: string; occurredAt: string; data: unknown }[];
  /** While set, requests are answered with this status (a receiver in trouble). */
  failWith: number | null;
  /** Stops listening (connections refused), and starts again on the same port. */
  down(): void;
  up(): void;
  stop(): void;
}

export function webhookReceiver(secret: string): Receiver {
  const verifier = new Webhook(secret);
  const received: Received[] = [];
  let server: ReturnType<typeof Bun.serve> | null = null;
  let port = 0;
  const receiver: Receiver = {
    url: "",
    received,
    failWith: null,
    accepted: () => received.filter((r) => r.status < 300).map((r) => JSON.parse(r.body)),
    down() {
      server?.stop(true);
      server = null;
    },
    up() {
      server = Bun.serve({
        port,
        hostname: "127.0.0.1",
        async fetch(request) {
          const body = await request.text();
          const headers = Object.fromEntries(request.headers);
          let valid = true;
          try {
            verifier.verify(body, headers);
          } catch {
            valid = false;
          }
          const status = !valid ? 401 : (receiver.failWith ?? 204);
          received.push({
            webhookId: headers["webhook-id"] ?? "",
            timestamp: Number(headers["webhook-timestamp"]),
            body,
            valid,
            status,
          });
          return new Response(null, { status });
        },
      });
      port = server.port as number;
      receiver.url = `http://127.0.0.1:${port}/hooks/flashcart`;
    },
    stop() {
      receiver.down();
    },
  };
  receiver.up();
  return receiver;
}

export interface StreamMessage {
  seq: number;
  subject: string;
  msgId: string | undefined;
  body: string;
}

/** A JetStream stream name and subject prefix of a test's own; `remove()` deletes the stream. */
export function privateStream() {
  const tag = `${process.pid}_${randomBytes(4).toString("hex")}`;
  const stream = `FLASHCART_TEST_${tag}`;
  const subjectPrefix = `flashcart-test.${tag}.events`;
  return {
    stream,
    subjectPrefix,
    async messages(): Promise<StreamMessage[]> {
      const connection = await connect({ servers: TEST_NATS_URL });
      try {
        const manager = await jetstreamManager(connection);
        const info = await manager.streams.info(stream);
        const messages: StreamMessage[] = [];
        for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
          const message = await manager.streams.getMessage(stream, { seq });
          if (message === null) continue;
          messages.push({
            seq,
            subject: message.subject,
            msgId: message.header.get("Nats-Msg-Id"),
            body: message.string(),
          });
        }
        return messages;
      } finally {
        await connection.close();
      }
    },
    async remove(): Promise<void> {
      const connection = await connect({ servers: TEST_NATS_URL });
      try {
        const manager = await jetstreamManager(connection);
        await manager.streams.delete(stream).catch(() => false);
      } finally {
        await connection.close();
      }
    },
  };
}

/** Waits, polling, until `done()` holds; fails with `what` after `boundMs` (a bound, not a timing). */
export async function eventually(what: string, done: () => Promise<boolean> | boolean, boundMs = 30_000) {
  const deadline = Date.now() + boundMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`still not so after ${boundMs} ms: ${what}`);
    await Bun.sleep(20);
  }
}
