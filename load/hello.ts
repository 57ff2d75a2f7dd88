/** A bare Bun.serve hello-world: the ceiling every flashcart figure is compared with. */
const server = Bun.serve({
  port: Number(process.env.PORT ?? 0),
  hostname: "127.0.0.1",
  fetch: () => new Response("hello"),
});
console.log(JSON.stringify({ msg: "hello listening", url: server.url.href }));
process.on("SIGTERM", () => {
  server.stop(true);
  process.exit(0);
});
