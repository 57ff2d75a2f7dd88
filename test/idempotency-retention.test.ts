/** Stored idempotent responses live at least 24 h, then the hourly purge frees their keys. */
import { expect, test } from "bun:test";
import { DAY_MS } from "../src/domain/limits.ts";
import { openSqlite } from "../src/store/sqlite/database.ts";
import { SqliteStore } from "../src/store/sqlite/store.ts";

test("purge removes only keys older than the cut-off; a purged key can be used afresh", async () => {
  const store = new SqliteStore(openSqlite({ path: ":memory:", synchronous: "NORMAL", busyTimeoutMs: 0 }), {
    writeLockWaitMs: 0,
    events: true,
  });
  const t0 = Date.UTC(2026, 0, 1);
  const user = await store.createUser("kim", t0);
  const claim = (key: string, amount: number) => ({
    userId: user.id,
    amount,
    now: t0,
    idempotency: { key, fingerprint: `charge ${amount}`, statusCode: 200 },
  });

  expect(await store.chargePoints(claim("old", 100))).toEqual({
    replayed: false,
    value: { userId: user.id, balance: 100 },
  });
  expect(await store.chargePoints({ ...claim("new", 50), now: t0 + DAY_MS })).toMatchObject({ replayed: false });
  expect(await store.chargePoints(claim("old", 100))).toEqual({
    replayed: true,
    statusCode: 200,
    body: JSON.stringify({ userId: user.id, balance: 100 }),
  });

  expect(await store.purgeIdempotencyKeys(t0 + 1)).toBe(1);

  // "old" is gone: the same key now does the work again; "new" is still remembered.
  expect(await store.chargePoints(claim("old", 100))).toMatchObject({ replayed: false, value: { balance: 250 } });
  expect(await store.chargePoints({ ...claim("new", 50), now: t0 + DAY_MS })).toMatchObject({ replayed: true });
  expect((await store.getUser(user.id)).balance).toBe(250);
  await store.close();
});
