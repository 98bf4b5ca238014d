// `deno task start`: the live dashboard on http://127.0.0.1:8000.
//
//   deno task start [--port N] [--host ADDRESS]
//
// PORT sets the port too (--port wins). The server listens on loopback unless --host says
// otherwise; Ctrl-C stops it.
import { parseArgs } from "node:util";
import { tryAllGpus } from "./mod.ts";
import { serveDashboard } from "./server/serve.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string" },
    host: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log("deno task start [--port N] [--host ADDRESS]   (PORT also sets the port)");
  Deno.exit(0);
}
const rawPort = values.port ?? Deno.env.get("PORT") ?? "8000";
const port = Number(rawPort);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`Cannot listen on port "${rawPort}": it must be a whole number from 0 to 65535`);
  Deno.exit(2);
}

const devices = await tryAllGpus();
const server = await serveDashboard({ devices, port, hostname: values.host });
console.log(`autopar dashboard: ${server.url}`);
for (const d of devices) console.log(`  ${d.name}: ${d.info.adapter}`);
if (devices.length === 0) console.log("  no WebGPU adapter: experiments run on the host");
Deno.addSignalListener("SIGINT", async () => {
  await server.shutdown();
  Deno.exit(0);
});
await server.finished;
