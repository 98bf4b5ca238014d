/**
 * Bundles the islands for the browser with `deno bundle` (Deno's own bundler), once, when
 * the server starts.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/**
 * The browser bundle of `islands/client.ts`, minified. Throws when the islands are not on
 * the local disk or `deno bundle` fails, with its output.
 */
export async function bundleIslands(): Promise<string> {
  const entry = new URL("../islands/client.ts", import.meta.url);
  if (entry.protocol !== "file:") {
    throw new Error(`Cannot bundle the islands from ${entry}: they must be on the local disk`);
  }
  const config = fileURLToPath(new URL("../deno.json", import.meta.url));
  const { success, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform=browser",
      "--minify",
      "--config",
      config,
      fileURLToPath(entry),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  if (!success) {
    throw new Error(`Cannot bundle the islands: deno bundle failed:\n${text.decode(stderr)}`);
  }
  return text.decode(stdout);
}
