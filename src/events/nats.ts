/**
 * The NATS JetStream sink (the official @nats-io/jetstream client): each event published on
 * `<prefix>.<type>` (flashcart.events.order.paid) to the stream, created when missing to hold
 * `<prefix>.>`. The message id (`Nats-Msg-Id`) is the event id, so JetStream drops a repeat sent within
 * its duplicate window (2 minutes by default): a publish the relay sends again because its
 * acknowledgement was lost is stored once. A publish counts only once JetStream acknowledged it.
 * A batch is published at once, in id order on one connection, and the acknowledgements are awaited
 * together; the relay's cursor moves past the first unacknowledged one only.
 *
 * In order, too: the server stores what one connection sends in the order sent, and the connection
 * never reconnects by itself. (The client's own reconnection would resend, on the new connection,
 * publishes still buffered from the old one, while one already written to the dead socket was lost:
 * a later event stored before an earlier one.) After any failure the connection is closed, and the
 * next attempt connects afresh and publishes again from the first unacknowledged event.
 */
import { type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { envelopeJson, type StoredEvent } from "../domain/events.ts";
import type { Delivery, Sink } from "./relay.ts";

export interface NatsTarget {
  url: string;
  stream: string;
  /** Subjects are `<subjectPrefix>.<event type>`. */
  subjectPrefix: string;
}

/** How long a publish waits for JetStream's acknowledgement. */
const ACK_TIMEOUT_MS = 5000;

export class NatsSink implements Sink {
  readonly name = "nats";
  /** One publish with its message id and the acknowledgement's handling, measured here. */
  readonly costUs = 30;
  private connection: NatsConnection | null = null;
  private client: JetStreamClient | null = null;

  constructor(private readonly target: NatsTarget) {}

  /** Connects and makes sure the stream exists, once; again after a failure to. */
  private async ready(): Promise<JetStreamClient> {
    if (this.client !== null) return this.client;
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
    this.connection = connection;
    this.client = jetstream(connection);
    return this.client;
  }

  async deliver(events: readonly StoredEvent[]): Promise<Delivery> {
    let client: JetStreamClient;
    try {
      client = await this.ready();
    } catch (error) {
      await this.close().catch(() => {});
      return { delivered: 0, error };
    }
    const acks = await Promise.allSettled(
      events.map((event) =>
        client.publish(`${this.target.subjectPrefix}.${event.type}`, envelopeJson(event), {
          msgID: String(event.id),
          timeout: ACK_TIMEOUT_MS,
        }),
      ),
    );
    for (const [i, ack] of acks.entries()) {
      if (ack.status === "rejected") {
        await this.close().catch(() => {});
        return { delivered: i, error: ack.reason };
      }
    }
    return { delivered: events.length, error: null };
  }

  async close(): Promise<void> {
    const connection = this.connection;
    this.connection = null;
    this.client = null;
    await connection?.close();
  }
}
