/**
 * load/layers.ts: which layer a profile's samples are charged to. A synthetic profile, one sample per
 * leaf, 1 ms each.
 */
import { describe, expect, test } from "bun:test";
import { layersOf, placeOf } from "../load/layers.ts";

const root = "/work/flashcart";

/** A profile whose samples are the given chains of frames (outermost first), 1 ms each. */
function profileOf(chains: [string, string][][]) {
  const nodes: { id: number; callFrame: { functionName: string; url: string }; children: number[] }[] = [
    { id: 1, callFrame: { functionName: "(root)", url: "" }, children: [] },
  ];
  const samples: number[] = [];
  for (const chain of chains) {
    let parent = nodes[0] as (typeof nodes)[number];
    for (const [functionName, url] of chain) {
      const node = { id: nodes.length + 1, callFrame: { functionName, url }, children: [] };
      nodes.push(node);
      parent.children.push(node.id);
      parent = node;
    }
    samples.push(parent.id);
  }
  return { nodes, samples, timeDeltas: samples.map(() => 1000), startTime: 0, endTime: samples.length * 1000 };
}

describe("load/layers.ts", () => {
  test("a package's own src/ folder is the package's, not flashcart's", () => {
    expect(placeOf(`${root}/node_modules/postgres/src/connection.js`)).toBe("node_modules/postgres/src/connection.js");
    expect(placeOf(`${root}/src/store/pg/orders.ts`)).toBe("src/store/pg/orders.ts");
    expect(placeOf("node:net")).toBeNull();
  });

  test("each sample goes to its innermost known frame's layer; the relay takes everything under it", () => {
    const handler: [string, string] = ["placeOrder", `${root}/src/http/orders.ts`];
    const { busy, shares } = layersOf(
      profileOf([
        [handler, ["execute", `${root}/node_modules/postgres/src/connection.js`]],
        [handler, ["execute", `${root}/node_modules/postgres/src/connection.js`], ["write", "node:net"]],
        [handler],
        [["boot", `${root}/src/main.ts`]],
        [handler, ["stringify", ""]],
        // A native named like an Object.prototype method is its caller's, not a layer of its own.
        [handler, ["toString", ""]],
        [
          ["pump", `${root}/src/events/relay.ts`],
          ["execute", `${root}/node_modules/postgres/src/connection.js`],
        ],
        [["(idle)", ""]],
      ]),
    );
    expect(busy).toBe(7000);
    expect(Object.fromEntries(shares)).toEqual({
      "PostgreSQL client (postgres.js)": 2000,
      handlers: 2000,
      "other flashcart code": 1000,
      JSON: 1000,
      "event relay and sinks": 1000,
    });
  });
});
