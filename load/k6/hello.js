// The ceiling: a bare hello-world server under the same executor (used by `bun run bench` with k6).
// With THINK_MS (and SCENARIO=report), the same pauses as the paced scenarios: the latency floor at their rate.

import { sleep } from "k6";
import http from "k6/http";
import { BASE_URL, count, optionsFor, thinkSeconds } from "./common.js";

export const options = optionsFor(0);

export default function () {
  count(http.get(`${BASE_URL}/`));
  const pause = thinkSeconds(0);
  if (pause > 0) sleep(pause);
}
