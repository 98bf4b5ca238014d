// `deno task start`: the live dashboard on http://127.0.0.1:8000.
//
//   deno task start [--port N] [--host ADDRESS] [--nats URL [--job ID]] [--no-gpus]
//
// PORT sets the port too (--port wins). The server listens on loopback unless --host says
// otherwise; Ctrl-C stops it. With --nats it also follows the trace that the ranks of
// distributed jobs publish there (launched with AUTOPAR_TRACE=1, or `deno task launch
// --dashboard`): every job's, or only --job's, one lane per rank and device. --no-gpus takes
// no adapter (the launcher's dashboard leaves them to the ranks; experiments run on the host).
import { parseArgs } from "node:util";
import { tryAllGpus } from "./mod.ts";
import { serveDashboard } from "./server/serve.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    port: { type: "string" },
    host: { type: "string" },
    nats: { type: "string" },
    job: { type: "string" },
    "no-gpus": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(
    "deno task start [--port N] [--host ADDRESS] [--nats URL [--job ID]] [--no-gpus]" +
      "   (PORT also sets the port)",
  );
  Deno.exit(0);
}
const rawPort = values.port ?? Deno.env.get("PORT") ?? "8000";
const port = Number(rawPort);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`Cannot listen on port "${rawPort}": it must be a whole number from 0 to 65535`);
  Deno.exit(2);
}

if (values.job !== undefined && values.nats === undefined) {
  console.error(`Cannot follow job "${values.job}": name its NATS server with --nats URL`);
  Deno.exit(2);
}
const devices = values["no-gpus"] ? [] : await tryAllGpus();
let server;
try {
  server = await serveDashboard({
    devices,
    port,
    hostname: values.host,
    nats: values.nats === undefined ? undefined : { url: values.nats, job: values.job },
  });
} catch (e) {
  console.error(e instanceof Error ? e.message : String(e));
  Deno.exit(1);
}
console.log(`autopar dashboard: ${server.url}`);
if (values.nats !== undefined) {
  console.log(`  following ${values.job ? `job ${values.job}` : "every job"} at ${values.nats}`);
}
for (const d of devices) console.log(`  ${d.name}: ${d.info.adapter}`);
if (devices.length === 0) {
  console.log(
    `  ${values["no-gpus"] ? "--no-gpus" : "no WebGPU adapter"}: experiments run on the host`,
  );
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    await server.shutdown();
    Deno.exit(0);
  });
}
await server.finished;
