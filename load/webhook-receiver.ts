/**
 * The bench's webhook receiver (`bun run bench --events`): answers every POST 204 at once and counts
 * it, as a data platform's endpoint would that queues deliveries for later. It does not check
 * signatures: the bench measures flashcart's cost, and the receiver shares the machine with it (the
 * tests check every signature, test/relay.test.ts and test/events-crash.test.ts).
 */
let received = 0;
const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: "127.0.0.1",
  async fetch(request) {
    if (request.method !== "POST") return Response.json({ received });
    await request.arrayBuffer();
    received++;
    return new Response(null, { status: 204 });
  },
});
console.log(JSON.stringify({ msg: "webhook receiver listening", url: server.url.href }));

export {};

process.on("SIGTERM", () => {
  server.stop(true);
  process.exit(0);
});
