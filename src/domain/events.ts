/**
 * The events of the transactional outbox: what a committed write did, recorded by that write in its
 * own transaction, so a write that rolls back leaves no event and a committed one always has exactly
 * one. Which events a write records, and what they say, is decided here for every backend; stores
 * only write them (and give each its id).
 *
 * An event's `data` is the resource as the API answered it at that moment, kept as JSON text: the
 * feed, the webhook body and the NATS message all carry those exact bytes (see envelopeJson).
 */
import { type CouponDefinition, couponOf } from "./coupon.ts";
import type { ClaimedCoupon, Order, PointBalance } from "./model.ts";
import { isoOf } from "./time.ts";

export const eventTypes = [
  "coupon.claimed",
  "coupon.sold_out",
  "order.paid",
  "order.cancelled",
  "points.charged",
] as const;
export type EventType = (typeof eventTypes)[number];

/** An event as a write records it. Timestamps are epoch milliseconds; `data` is JSON text. */
export interface NewEvent {
  type: EventType;
  occurredAt: number;
  data: string;
}

/**
 * An event as stored. `id` increases in commit order within one database: once an id can be read,
 * every smaller id that will ever exist can be read too (PostgreSQL: see its sequencer).
 */
export interface StoredEvent extends NewEvent {
  id: number;
}

/**
 * A claim's events, decided before its write, which alone knows the new user coupon's id and whether
 * it took the last one. `claimedAfterId` is coupon.claimed's data without the id (`"userId":…}`): the
 * store puts `{"id":<id>,` in front of it (claimedData; PostgreSQL's take_coupon functions do the
 * same), so the text is the claim's answer, byte for byte. `soldOutData` is coupon.sold_out's data,
 * recorded only by the claim that takes a drop's last coupon: once per drop.
 */
export interface ClaimEvents {
  occurredAt: number;
  claimedAfterId: string;
  soldOutData(): string;
}

/** coupon.claimed's data, once the store knows the user coupon's id. */
export function claimedData(userCouponId: number, claimedAfterId: string): string {
  return `{"id":${userCouponId},${claimedAfterId}`;
}

export function claimEvents(claim: Omit<ClaimedCoupon, "id">, drop: CouponDefinition, now: number): ClaimEvents {
  return {
    occurredAt: now,
    claimedAfterId: JSON.stringify(claim).slice(1),
    // Sold out: every coupon of the drop claimed, as GET /api/coupons/:id then shows it.
    soldOutData: () => JSON.stringify(couponOf(drop, drop.totalQuantity)),
  };
}

/** `body`: the order's JSON when the caller has it already (the stored response of an idempotent request). */
export function orderPaid(order: Order, now: number, body: string = JSON.stringify(order)): NewEvent {
  return { type: "order.paid", occurredAt: now, data: body };
}

export function orderCancelled(order: Order, now: number): NewEvent {
  return { type: "order.cancelled", occurredAt: now, data: JSON.stringify(order) };
}

export function pointsCharged(balance: PointBalance, now: number): NewEvent {
  return { type: "points.charged", occurredAt: now, data: JSON.stringify(balance) };
}

/**
 * The envelope every consumer receives, `{id, type, occurredAt, data}`, as JSON text: the stored
 * data is spliced in as it is, never parsed and serialised again.
 */
export function envelopeJson(event: StoredEvent): string {
  return `{"id":${event.id},"type":"${event.type}","occurredAt":"${isoOf(event.occurredAt)}","data":${event.data}}`;
}

/** How many events of each type were written: counted by the stores after their commits, read by /metrics. */
export class EventTally {
  readonly written: Record<EventType, number> = {
    "coupon.claimed": 0,
    "coupon.sold_out": 0,
    "order.paid": 0,
    "order.cancelled": 0,
    "points.charged": 0,
  };

  add(types: readonly EventType[]): void {
    for (const type of types) this.written[type]++;
  }
}
