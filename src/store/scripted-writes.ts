/**
 * Writes of the port that are the same for every adapter: the domain's scripts (domain/writes.ts),
 * each run to its end by the adapter's own transaction runner. (Claims and orders are the hot paths:
 * each adapter runs those scripts itself, answering what it can before or without a transaction.)
 */
import type { Order, PointBalance } from "../domain/model.ts";
import type { Script } from "../domain/script.ts";
import {
  type CancelOrder,
  type ChargePoints,
  cancelOrder,
  chargePoints,
  type Idempotent,
  type WriteStorage,
} from "../domain/writes.ts";
import type { Store } from "./port.ts";

type Writes = Pick<Store, "cancelOrder" | "chargePoints">;

export abstract class ScriptedWrites implements Writes {
  /**
   * Runs one write script in one transaction: all of its effects commit, or none. The script is made
   * for the store's choice of recording events or not.
   */
  protected abstract run<R>(script: (recordEvents: boolean) => Script<WriteStorage, R>): Promise<R>;

  cancelOrder(command: CancelOrder): Promise<Order> {
    return this.run((recordEvents) => cancelOrder(command, recordEvents));
  }

  chargePoints(command: ChargePoints): Promise<Idempotent<PointBalance>> {
    return this.run((recordEvents) => chargePoints(command, recordEvents));
  }
}
