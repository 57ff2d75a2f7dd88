/**
 * The four writes of the port, the same for every adapter: the domain's scripts (domain/writes.ts),
 * each run to its end by the adapter's own transaction runner. An adapter provides `run`, nothing else.
 */
import type { ClaimedCoupon, Order, PointBalance } from "../domain/model.ts";
import type { Script } from "../domain/script.ts";
import {
  type CancelOrder,
  type ChargePoints,
  type ClaimCoupon,
  cancelOrder,
  chargePoints,
  claimCoupon,
  type Idempotent,
  type PlaceOrder,
  placeOrder,
  type WriteStorage,
} from "../domain/writes.ts";
import type { Store } from "./port.ts";

type Writes = Pick<Store, "claimCoupon" | "placeOrder" | "cancelOrder" | "chargePoints">;

export abstract class ScriptedWrites implements Writes {
  /** Runs one write script in one transaction: all of its effects commit, or none. */
  protected abstract run<R>(script: () => Script<WriteStorage, R>): Promise<R>;

  claimCoupon(command: ClaimCoupon): Promise<ClaimedCoupon> {
    return this.run(() => claimCoupon(command));
  }

  placeOrder(command: PlaceOrder): Promise<Idempotent<Order>> {
    return this.run(() => placeOrder(command));
  }

  cancelOrder(command: CancelOrder): Promise<Order> {
    return this.run(() => cancelOrder(command));
  }

  chargePoints(command: ChargePoints): Promise<Idempotent<PointBalance>> {
    return this.run(() => chargePoints(command));
  }
}
