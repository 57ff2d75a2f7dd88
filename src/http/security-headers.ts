import type { MiddlewareHandler } from "hono";
import { secureHeaders } from "hono/secure-headers";

/**
 * The headers a JSON answer needs, after the OWASP REST Security Cheat Sheet ("Security headers"):
 * never rendered as a document in a frame or sniffed as another type, only over HTTPS once seen over
 * it, and not readable by another site's no-cors request. Hono's default set adds six headers that
 * only act on HTML documents (X-XSS-Protection, X-Download-Options, X-DNS-Prefetch-Control,
 * X-Permitted-Cross-Domain-Policies, Origin-Agent-Cluster, Cross-Origin-Opener-Policy); on a JSON
 * answer they only cost (Bun sets response headers one native call at a time: ≈ 0.4 µs a request
 * fewer in a micro-benchmark, below what load/profile.ts can resolve; see load/PERFORMANCE.md).
 */
const apiHeaders = secureHeaders({
  contentSecurityPolicy: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
  crossOriginResourcePolicy: "same-origin",
  strictTransportSecurity: "max-age=15552000; includeSubDomains",
  xContentTypeOptions: true,
  xFrameOptions: "DENY",
  crossOriginEmbedderPolicy: false,
  crossOriginOpenerPolicy: false,
  originAgentCluster: false,
  referrerPolicy: false,
  xDnsPrefetchControl: false,
  xDownloadOptions: false,
  xPermittedCrossDomainPolicies: false,
  xXssProtection: false,
});

/** Pages (the API reference, /health, /openapi.json): Hono's full default set. */
const pageHeaders = secureHeaders();

/** Security headers on every response: the JSON API's set under /api/, the documents' set elsewhere. */
export const securityHeaders: MiddlewareHandler = (c, next) =>
  c.req.path.startsWith("/api/") ? apiHeaders(c, next) : pageHeaders(c, next);
