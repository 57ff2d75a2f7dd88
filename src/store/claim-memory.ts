/**
 * What a store may remember about claims, because it never changes once committed:
 * - a drop's definition (there is no update or delete of a drop);
 * - that a user exists (users are never deleted);
 * - that a user holds a drop (a holding is never deleted);
 * - that a drop is sold out, and then who holds it: the supply never grows and every slot was taken
 *   in the same transaction as its holding, so the holders read after a committed "sold out" are all
 *   of them, for good.
 *
 * In a stampede nearly every request is a loser; with these facts in memory a loser is answered
 * without a statement, a lock or a round trip (issue #10 item 4, #11). Stores put a fact here only
 * once it is committed, and the database's guards stay the final word for everything not known here.
 * Every map is bounded: when one is full it starts over, and what was forgotten is read again.
 */
import type { CouponDefinition } from "../domain/coupon.ts";
import type { ClaimRefusal } from "../domain/writes.ts";

/** A drop as created: everything but its claimed count, which is never remembered. */
export type DropDefinition = CouponDefinition;

const MAX_DEFINITIONS = 100_000;
const MAX_USERS = 1_000_000;
const MAX_HOLDINGS = 2_000_000;

interface Holders {
  users: Set<number>;
  /** Every holder: the drop is sold out. Otherwise only holdings this process has seen committed. */
  complete: boolean;
}

export class ClaimMemory {
  private readonly definitions = new Map<number, DropDefinition>();
  private readonly users = new Set<number>();
  private readonly holders = new Map<number, Holders>();
  private holdings = 0;

  definition(couponId: number): DropDefinition | undefined {
    return this.definitions.get(couponId);
  }

  rememberDefinition(couponId: number, definition: DropDefinition): void {
    if (this.definitions.size >= MAX_DEFINITIONS) this.definitions.clear();
    this.definitions.set(couponId, definition);
  }

  knowsUser(userId: number): boolean {
    return this.users.has(userId);
  }

  rememberUser(userId: number): void {
    if (this.users.size >= MAX_USERS) this.users.clear();
    this.users.add(userId);
  }

  /** The refusal known without asking the database ("holds it" first, as everywhere), else null. */
  refusal(userId: number, couponId: number): ClaimRefusal | null {
    const drop = this.holders.get(couponId);
    if (drop === undefined) return null;
    if (drop.users.has(userId)) return "ALREADY_CLAIMED";
    return drop.complete ? "SOLD_OUT" : null;
  }

  isSoldOut(couponId: number): boolean {
    return this.holders.get(couponId)?.complete === true;
  }

  /** A claim committed: this user holds this drop. */
  rememberHolding(userId: number, couponId: number): void {
    let drop = this.holders.get(couponId);
    if (drop === undefined) {
      drop = { users: new Set(), complete: false };
      this.holders.set(couponId, drop);
    }
    if (drop.complete || drop.users.has(userId)) return;
    this.makeRoom(1);
    drop.users.add(userId);
    this.holdings++;
  }

  /** The drop was seen sold out in committed rows, and these are its holders, read after that. */
  rememberSoldOut(couponId: number, holderIds: Iterable<number>): void {
    const users = new Set(holderIds);
    this.makeRoom(users.size);
    this.holdings += users.size - (this.holders.get(couponId)?.users.size ?? 0);
    this.holders.set(couponId, { users, complete: true });
  }

  private makeRoom(more: number): void {
    if (this.holdings + more <= MAX_HOLDINGS) return;
    this.holders.clear();
    this.holdings = 0;
  }
}
