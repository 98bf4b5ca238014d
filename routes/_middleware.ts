/**
 * Guards every request: a Host check against DNS rebinding when serving on loopback, the
 * page's own Origin for requests that change state (403 otherwise), a size limit on request
 * bodies (413), and headers that keep the page's scripts its own.
 *
 * @module
 */
import type { MiddlewareHandler } from "npm:hono@4.13.19";
import { bodyLimit } from "npm:hono@4.13.19/body-limit";

/** Options of {@link guard}. */
export interface GuardOptions {
  /**
   * Host names the server answers to; null answers any (when listening beyond loopback).
   * @default {["127.0.0.1", "localhost", "[::1]"]}
   */
  allowedHosts?: readonly string[] | null;
  /**
   * Largest request body, in bytes.
   * @default {16384}
   */
  maxBodyBytes?: number;
}

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join("; ");

/** The middleware; see the module documentation. */
export function guard(options: GuardOptions = {}): MiddlewareHandler {
  const hosts = options.allowedHosts === undefined
    ? ["127.0.0.1", "localhost", "[::1]"]
    : options.allowedHosts;
  const maxBodyBytes = options.maxBodyBytes ?? 16 * 1024;
  const limit = bodyLimit({
    maxSize: maxBodyBytes,
    onError: (c) =>
      c.json({ error: `Cannot accept a request body over ${maxBodyBytes} bytes` }, 413),
  });
  return async (c, next) => {
    const url = new URL(c.req.url);
    if (hosts && !hosts.includes(url.hostname)) {
      return c.json({
        error: `Cannot serve host "${url.hostname}": this dashboard answers only to ` +
          `${hosts.join(", ")} (start it with --host to listen elsewhere)`,
      }, 403);
    }
    if (!SAFE.has(c.req.method)) {
      const origin = c.req.header("origin");
      const site = c.req.header("sec-fetch-site");
      if ((origin !== undefined && origin !== url.origin) || site === "cross-site") {
        return c.json({
          error: `Cannot accept a ${c.req.method} from origin ${origin ?? "(cross-site)"}: ` +
            `only pages of ${url.origin} may change the dashboard`,
        }, 403);
      }
      // The limit answers 413 itself, without calling the route.
      const refused = await limit(c, next);
      if (refused instanceof Response) c.res = refused;
    } else await next();
    c.header("content-security-policy", CSP);
    c.header("x-content-type-options", "nosniff");
    c.header("referrer-policy", "no-referrer");
    c.header("x-frame-options", "DENY");
  };
}
