/**
 * The NATS JetStream sink (the official NATS clients: @nats-io/jetstream manages the stream,
 * @nats-io/transport-node carries the publishes): each event published on `<prefix>.<type>`
 * (flashcart.events.order.paid) to the stream, created when missing to hold `<prefix>.>`. The message
 * id (`Nats-Msg-Id`) is the event id, so JetStream drops a repeat sent within its duplicate window (2
 * minutes by default): a publish the relay sends again because its acknowledgement was lost is stored
 * once. A publish counts only once JetStream acknowledged it.
 * A batch is published at once, in id order on one connection, and the acknowledgements are awaited
 * together; the relay's cursor moves past the first unacknowledged one only.
 *
 * In order, too: the server stores what one connection sends in the order sent, and the connection
 * never reconnects by itself. (The client's own reconnection would resend, on the new connection,
 * publishes still buffered from the old one, while one already written to the dead socket was lost:
 * a later event stored before an earlier one.) After any failure the connection is closed, and the
 * next attempt connects afresh and publishes again from the first unacknowledged event.
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, createInbox, headers, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { envelopeJson, type StoredEvent } from "../domain/events.ts";
import type { Delivery, Sink } from "./relay.ts";

export interface NatsTarget {
  url: string;
  stream: string;
  /** Subjects are `<subjectPrefix>.<event type>`. */
  subjectPrefix: string;
}

/** How long a batch waits for JetStream's acknowledgements. */
const ACK_TIMEOUT_MS = 5000;

/**
 * JetStream's answer to one publish: the stream stored it (or already had that message id), or why not.
 * The answer is a message on the publish's reply subject: a status header when nothing took the
 * subject (503, no responders), else JSON, `{stream, seq, duplicate?}` or `{error: {code, description}}`.
 */
function ackOf(message: Msg): Error | null {
  if (message.headers?.hasError) {
    return new Error(`JetStream did not take the message: ${message.headers.code} ${message.headers.description}`);
  }
  let ack: { stream?: unknown; error?: { code?: number; description?: string } };
  try {
    ack = message.json();
  } catch {
    return new Error("JetStream's acknowledgement is not JSON");
  }
  if (ack.error !== undefined)
    return new Error(`JetStream refused the message: ${ack.error.code} ${ack.error.description}`);
  if (typeof ack.stream !== "string" || ack.stream === "")
    return new Error("JetStream's acknowledgement names no stream");
  return null;
}

/** An open connection with its inbox, where every acknowledgement of this connection's publishes arrives. */
interface Link {
  connection: NatsConnection;
  inbox: string;
  /** Publishes waiting for their acknowledgement, by the last token of their reply subject (the event id). */
  waiting: Map<string, (outcome: Error | null) => void>;
}

export class NatsSink implements Sink {
  readonly name = "nats";
  /**
   * One event's share of the thread while requests wait, acknowledgement included, measured under load
   * in `--cpu-prof` profiles of `bun run bench --events`: ≈ 10 µs (SQLite orders, ≈ 640 events a
   * second) and ≈ 16 µs (PostgreSQL claims, ≈ 1,070 a second, every layer 30 % slower than with events
   * off); the larger, so that the relay's share is a bound until the relay has measured it on the
   * machine it runs on (relay.ts). 6–9 µs alone (3 × 3,072 events). The client's own `js.publish` is
   * a request per message (its own reply timer, two errors built for their stack traces, the
   * request's bookkeeping): 21–24 µs alone, ≈ 100 µs under load.
   */
  readonly costUs = 16;
  private link: Link | null = null;

  constructor(private readonly target: NatsTarget) {}

  /** Connects, makes sure the stream exists and listens on an inbox for acknowledgements, once; again after a failure. */
  private async ready(): Promise<Link> {
    if (this.link !== null) return this.link;
    const connection = await connect({ servers: this.target.url, name: "flashcart", reconnect: false });
    try {
      const manager = await jetstreamManager(connection);
      const subjects = [`${this.target.subjectPrefix}.>`];
      await manager.streams.info(this.target.stream).catch(async (error: unknown) => {
        if ((error as { name?: unknown }).name !== "StreamNotFoundError") throw error;
        await manager.streams.add({ name: this.target.stream, subjects });
      });
    } catch (error) {
      await connection.close();
      throw error;
    }
    const link: Link = { connection, inbox: createInbox(), waiting: new Map() };
    connection.subscribe(`${link.inbox}.*`, {
      callback: (_error, message) => {
        const token = message.subject.slice(link.inbox.length + 1);
        const settle = link.waiting.get(token);
        if (settle === undefined) return; // a late answer to a batch already given up on
        link.waiting.delete(token);
        settle(ackOf(message));
      },
    });
    this.link = link;
    return link;
  }

  /**
   * Publishes the batch at once, in id order, each with its message id and a reply subject on this
   * connection's inbox (what `js.publish` sends, without a request's own timer and bookkeeping per
   * message), and waits for every acknowledgement, within one timeout for the whole batch.
   */
  async deliver(events: readonly StoredEvent[], signal: AbortSignal): Promise<Delivery> {
    // A relay already stopping publishes nothing (its abort event has fired: nothing would cut the wait).
    if (signal.aborted) return { delivered: 0, error: signal.reason };
    let link: Link;
    try {
      link = await this.ready();
    } catch (error) {
      await this.close().catch(() => {});
      return { delivered: 0, error };
    }
    const outcomes: Promise<Error | null>[] = [];
    for (const event of events) {
      const id = String(event.id);
      outcomes.push(new Promise((settle) => link.waiting.set(id, settle)));
      const header = headers();
      header.set("Nats-Msg-Id", id);
      try {
        link.connection.publish(`${this.target.subjectPrefix}.${event.type}`, envelopeJson(event), {
          headers: header,
          reply: `${link.inbox}.${id}`,
        });
      } catch (error) {
        link.waiting.get(id)?.(error instanceof Error ? error : new Error(String(error)));
        link.waiting.delete(id);
        break;
      }
    }
    const giveUp = (why: Error) => {
      for (const settle of link.waiting.values()) settle(why);
      link.waiting.clear();
    };
    const timer = setTimeout(
      () => giveUp(new Error(`no acknowledgement from JetStream within ${ACK_TIMEOUT_MS} ms`)),
      ACK_TIMEOUT_MS,
    );
    const onAbort = () => giveUp(new Error("the relay is stopping"));
    signal.addEventListener("abort", onAbort, { once: true });
    const answers = await Promise.all(outcomes);
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
    const failed = answers.findIndex((answer) => answer !== null);
    if (failed < 0) return { delivered: events.length, error: null };
    // Whatever the failure, the connection goes: a publish sent after the failed one may still be stored
    // later, and the next attempt starts afresh from the first unacknowledged event (see above).
    await this.close().catch(() => {});
    return { delivered: failed, error: answers[failed] };
  }

  async close(): Promise<void> {
    const link = this.link;
    this.link = null;
    if (link === null) return;
    for (const settle of link.waiting.values()) settle(new Error("the connection to NATS was closed"));
    link.waiting.clear();
    await link.connection.close();
  }
}
