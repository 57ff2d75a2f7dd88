/**
 * The data moves of the write scripts (domain/writes.ts) on SQLite: one prepared statement each,
 * synchronous, run inside the group commit's transaction. A guard that matched no row answers
 * false or null; the script decides what that means.
 */
import type { Changes } from "bun:sqlite";
import { claimedData, type EventType, type NewEvent } from "../../domain/events.ts";
import type { ClaimStorage, OrderCommit, OrderRefusal, WriteStorage } from "../../domain/writes.ts";
import type { DropDefinition } from "../claim-memory.ts";
import { must, toHeldCoupon } from "../rows.ts";
import type { Statements } from "./statements.ts";

/** drizzle types a prepared bun-sqlite `run()` as void; at run time it is bun:sqlite's `Changes`. */
export function changesOf(result: unknown): number {
  return (result as Changes).changes;
}

/**
 * What a claim learns that stays true once committed (see ClaimMemory): the store remembers it when
 * the batch commits.
 */
export interface ClaimFacts {
  definition(couponId: number, definition: DropDefinition): void;
  user(userId: number): void;
  holding(userId: number, couponId: number): void;
  soldOut(couponId: number): void;
}

/**
 * The moves of a claim that only read: a drop's definition, the user, and the refusals that never
 * revert ("holds it", "none left"), so a loser is answered by reads and writes nothing.
 */
function claimReads(
  q: Statements,
  learned: ClaimFacts,
): Pick<ClaimStorage, "findCoupon" | "userExists" | "knownRefusal"> {
  return {
    findCoupon: (couponId) => {
      const coupon = q.couponById.get({ id: couponId });
      if (coupon === undefined) return null;
      // Remembered without its claimed count, the one column that changes.
      const { issuedQuantity: _, ...definition } = coupon;
      learned.definition(couponId, definition);
      return coupon;
    },
    userExists: (userId) => {
      if (q.userById.get({ id: userId }) === undefined) return false;
      learned.user(userId);
      return true;
    },
    knownRefusal: (userId, couponId) => {
      if (q.holds.get({ userId, couponId }) !== undefined) {
        learned.holding(userId, couponId);
        return "ALREADY_CLAIMED";
      }
      if (q.soldOut.get({ id: couponId }) !== undefined) {
        learned.soldOut(couponId);
        return "SOLD_OUT";
      }
      return null;
    },
  };
}

/**
 * The moves, on the store's statements. Each event written is also pushed on `written`, which the
 * store reads at the end of the unit of work (and counts once the batch has committed); what a claim
 * learns for good goes to `learned`, remembered once its batch commits.
 */
export function sqliteWrites(q: Statements, written: EventType[], learned: ClaimFacts): WriteStorage {
  const recordEvent = (event: NewEvent) => {
    q.insertEvent.run({ type: event.type, occurredAt: event.occurredAt, data: event.data });
    written.push(event.type);
  };
  return {
    recordEvent,
    insertHistory: ({ createdAt, ...entry }) => q.insertHistory.run({ ...entry, now: createdAt }),

    storedRequest: (userId, request) => q.idempotencyByKey.get({ userId, key: request.key }) ?? null,
    storeResponse: (userId, request, responseBody, now) =>
      q.insertIdempotency.run({
        userId,
        key: request.key,
        fingerprint: request.fingerprint,
        statusCode: request.statusCode,
        responseBody,
        now,
      }),

    ...claimReads(q, learned),
    takeCoupon: ({ userId, couponId, issuedAt, expiresAt }, events) => {
      const held = q.insertUserCoupon.get({ userId, couponId, now: issuedAt, expiresAt });
      if (held === undefined) return "ALREADY_CLAIMED";
      const slot = q.takeSlot.get({ id: couponId });
      if (slot === undefined) {
        q.deleteHolding.run({ id: held.id });
        learned.soldOut(couponId);
        return "SOLD_OUT";
      }
      learned.holding(userId, couponId);
      if (events !== null) {
        const { occurredAt } = events;
        recordEvent({ type: "coupon.claimed", occurredAt, data: claimedData(held.id, events.claimedAfterId) });
        if (slot.last === 1) recordEvent({ type: "coupon.sold_out", occurredAt, data: events.soldOutData() });
      }
      return held.id;
    },

    pricesOf: (productIds) => productIds.map((id) => q.productPrice.get({ id })?.price ?? null),
    heldCoupon: (userCouponId) => {
      const row = q.heldCoupon.get({ id: userCouponId });
      return row === undefined ? null : toHeldCoupon(row);
    },
    newOrderId: () => must(q.nextOrderId.get(), "the next order id").id,
    commitOrder: (commit) => {
      const refusal = commitOrder(q, commit);
      if (refusal === null && commit.event !== null) recordEvent(commit.event);
      return refusal;
    },

    findOrder: (orderId) => q.orderById.get({ id: orderId }) ?? null,
    markCancelled: (orderId, now) => changesOf(q.markCancelled.run({ id: orderId, now })) > 0,
    orderLines: (orderId) => q.orderLines.all({ orderId }),
    returnStock: (productId, quantity) => q.returnStock.run({ id: productId, quantity }),
    releaseCoupon: (userCouponId) => q.releaseCoupon.run({ id: userCouponId }),
    creditWithinLimit: (userId, amount, maxBalance) =>
      q.creditWithinLimit.get({ id: userId, amount, maxBalance })?.balance ?? null,
  };
}

/**
 * An order's guarded writes in the documented order (domain/writes.ts, OrderStorage.commitOrder).
 * A refusal returns with the earlier writes still in place: the script then refuses the whole write,
 * which rolls its unit of the group commit back. Writes are serialised here, so the key of an
 * idempotent request, read at the start of the same unit, cannot have been taken meanwhile.
 */
function commitOrder(q: Statements, { order, lines, response }: OrderCommit): OrderRefusal | null {
  for (const { productId, quantity } of lines) {
    if (changesOf(q.takeStock.run({ id: productId, quantity })) === 0) return { guard: "STOCK", productId, quantity };
  }
  const { id: orderId, userId, userCouponId, paidAmount, createdAt: now } = order;
  if (userCouponId !== null && changesOf(q.useCoupon.run({ id: userCouponId, now })) === 0) return { guard: "COUPON" };
  let balanceAfter: number | null = null;
  if (paidAmount > 0) {
    const debited = q.debitIfCovered.get({ id: userId, amount: paidAmount });
    if (debited === undefined) return { guard: "POINTS" };
    balanceAfter = debited.balance;
  }
  q.insertOrder.run({ ...order, now });
  for (const line of lines) q.insertOrderItem.run({ orderId, ...line });
  if (balanceAfter !== null) {
    q.insertHistory.run({ userId, type: "USE", amount: paidAmount, balanceAfter, orderId, now });
  }
  if (response !== null) {
    const { key, fingerprint, statusCode } = response.request;
    q.insertIdempotency.run({ userId, key, fingerprint, statusCode, responseBody: response.body, now });
  }
  return null;
}
