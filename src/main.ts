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

const [command = "serve"] = process.argv.slice(2);
// The subcommand's own argument parser sees only its arguments.
if (process.argv.length > 2) process.argv.splice(2, 1);

switch (command) {
  case "serve":
    await import("./cli/serve.ts");
    break;
  case "migrate":
    await import("./cli/migrate.ts");
    break;
  case "seed":
    await import("./cli/seed.ts");
    break;
  case "token":
    await import("./cli/token.ts");
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
