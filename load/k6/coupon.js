// The report's coupon test: every iteration a random user claims the drop.
//   bun run seed --users 1000 && bun start
//   k6 run -e JWT_SECRET=$(cat data/flashcart.db.jwt-secret) -e USERS=1000 load/k6/coupon.js
import { check, sleep } from "k6";
import http from "k6/http";
import {
  BASE_URL,
  count,
  jsonHeaders,
  optionsFor,
  randomUser,
  thinkSeconds,
  token,
  USERS,
  userToken,
} from "./common.js";

export const options = optionsFor(200);

/** @returns {{ couponId: number }} */
export function setup() {
  if (__ENV.SEEDED === "1") return { couponId: Number(__ENV.COUPON_ID || 1) };
  const admin = token("k6-admin", "admin");
  const res = http.post(
    `${BASE_URL}/api/coupons`,
    JSON.stringify({
      name: "k6 drop",
      discountType: "FIXED",
      discountValue: 1000,
      totalQuantity: Math.max(1, Math.floor(USERS / 2)),
    }),
    jsonHeaders(admin),
  );
  if (res.status !== 201) throw new Error(`creating the coupon failed: ${res.status} ${res.body}`);
  return { couponId: /** @type {{ id: number }} */ (res.json()).id };
}

/** @param {{ couponId: number }} data */
export default function (data) {
  const user = randomUser();
  const res = http.post(
    `${BASE_URL}/api/coupons/${user}`,
    JSON.stringify({ couponId: data.couponId }),
    jsonHeaders(userToken(user)),
  );
  count(res);
  check(res, { "issued or a business rejection": (r) => r.status === 201 || r.status === 409 });
  sleep(thinkSeconds(200));
}
