/**
 * The one entry point: `bun start`, `bun run seed`, `bun run token`, `bun run db:migrate` and the
 * compiled binary (`bun run build` → dist/flashcart) all go through here.
 */
import packageJson from "../package.json";

const usage = `flashcart ${packageJson.version}: first-come coupon drops and orders that stay exact under a stampede

usage: flashcart [command] [options]

commands:
  serve                 serve the API (the default); configured by the environment (PORT, DATABASE_URL, …)
  migrate               apply pending migrations to DATABASE_URL and exit
  seed [--users N] [--points N] [--products N] [--price WON] [--stock N] [--coupons N] [--coupon-quantity N]
  token (--user ID | --admin [--sub NAME]) [--ttl 1h]
                        print a bearer token signed with the configured secret
  --version, --help`;

const [command = "serve", ...rest] = process.argv.slice(2);

// Each command's module is loaded only when it runs (serve alone needs the whole app). Its run(argv)
// resolves when the command is done (serve: once it listens) and exits with its own code on failure.
switch (command) {
  case "serve":
    await (await import("./cli/serve.ts")).run(rest);
    break;
  case "migrate":
    await (await import("./cli/migrate.ts")).run(rest);
    break;
  case "seed":
    await (await import("./cli/seed.ts")).run(rest);
    break;
  case "token":
    await (await import("./cli/token.ts")).run(rest);
    break;
  case "--version":
  case "-v":
    console.log(packageJson.version);
    break;
  case "--help":
  case "-h":
  case "help":
    console.log(usage);
    break;
  default:
    console.error(`unknown command "${command}"\n\n${usage}`);
    process.exit(2);
}
