// The report's order test: a random user buys one unit of a random product, paid in points.
//   bun run seed --users 1000 && bun start
//   k6 run -e JWT_SECRET=$(cat data/flashcart.db.jwt-secret) -e USERS=1000 load/k6/order.js
import { check, sleep } from "k6";
import http from "k6/http";
import {
  BASE_URL,
  chargeEveryUser,
  count,
  jsonHeaders,
  optionsFor,
  randomUser,
  thinkSeconds,
  token,
  userToken,
} from "./common.js";

export const options = optionsFor(950);

/** @returns {{ productIds: number[] }} */
export function setup() {
  if (__ENV.SEEDED === "1") {
    const products = Number(__ENV.PRODUCTS || 100);
    return { productIds: Array.from({ length: products }, (_, i) => i + 1) };
  }
  const admin = token("k6-admin", "admin");
  /** @type {number[]} */
  const productIds = [];
  for (let i = 1; i <= 100; i++) {
    const res = http.post(
      `${BASE_URL}/api/products`,
      JSON.stringify({ name: `k6 product ${i}`, price: 100, stock: 1000000 }),
      jsonHeaders(admin),
    );
    if (res.status !== 201) throw new Error(`creating products failed: ${res.status} ${res.body}`);
    productIds.push(/** @type {{ id: number }} */ (res.json()).id);
  }
  chargeEveryUser(admin, 10000);
  return { productIds };
}

/** @param {{ productIds: number[] }} data */
export default function (data) {
  const user = randomUser();
  const productId = data.productIds[Math.floor(Math.random() * data.productIds.length)];
  const res = http.post(
    `${BASE_URL}/api/orders`,
    JSON.stringify({ userId: user, items: [{ productId, quantity: 1 }] }),
    jsonHeaders(userToken(user)),
  );
  count(res);
  check(res, { "paid or a business rejection": (r) => r.status === 201 || r.status === 409 });
  sleep(thinkSeconds(950));
}
