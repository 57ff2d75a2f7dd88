// The ceiling: a bare hello-world server under the same executor (used by `bun run bench` with k6).
import http from "k6/http";
import { BASE_URL, count, optionsFor } from "./common.js";

export const options = optionsFor(0);

export default function () {
  count(http.get(`${BASE_URL}/`));
}
