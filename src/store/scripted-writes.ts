/**
 * Three writes of the port, the same for every adapter: the domain's scripts (domain/writes.ts), each
 * run to its end by the adapter's own transaction runner. (The claim is the hot path: each adapter
 * runs its script itself, answering its lock-free moves before any transaction.)
 */
import type { Order, PointBalance } from "../domain/model.ts";
import type { Script } from "../domain/script.ts";
import {
  type CancelOrder,
  type ChargePoints,
  cancelOrder,
  chargePoints,
  type Idempotent,
  type PlaceOrder,
  placeOrder,
  type WriteStorage,
} from "../domain/writes.ts";
import type { Store } from "./port.ts";

type Writes = Pick<Store, "placeOrder" | "cancelOrder" | "chargePoints">;

export abstract class ScriptedWrites implements Writes {
  /** Runs one write script in one transaction: all of its effects commit, or none. */
  protected abstract run<R>(script: () => Script<WriteStorage, R>): Promise<R>;

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
