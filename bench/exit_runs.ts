// Exit safety: runs a short two-device script many times per backend and counts the runs that
// did not end cleanly (a non-zero exit, a signal such as SIGSEGV, or no result line). Closing
// a device's Worker while the driver still tears down used to crash now and then, so this is
// counted, not assumed. Writes bench/results/exit_runs.json.
//
//   deno run -A bench/exit_runs.ts [--runs N] [--backends deno,dawn]
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: { runs: { type: "string", default: "50" }, backends: { type: "string" } },
});
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) {
  console.error(`--runs must be a whole number >= 1, got "${values.runs}"`);
  Deno.exit(2);
}
const backends = (values.backends ?? "deno,dawn").split(",");

// Two devices at once, a copy back, then the script just ends: the devices close when the
// event loop runs dry, as in a user's script.
const script = `
import { cpu, rand, synchronize, tryAllGpus } from ${
  JSON.stringify(new URL("../mod.ts", import.meta.url).href)
};
const devices = await tryAllGpus({ count: 2 });
const ys = devices.map((device, i) => {
  const x = rand([128, 128], { device, seed: i });
  let y = x;
  for (let k = 0; k < 5; k++) y = y.mm(x);
  return y.to(cpu(), { nonBlocking: true });
});
await synchronize();
const sums = await Promise.all(ys.map(async (y) => (await y.data()).reduce((a, b) => a + b, 0)));
console.log(JSON.stringify({ devices: devices.map((d) => d.info.backend), ok: sums.every(Number.isFinite) }));
`;

const results: Record<string, { runs: number; clean: number; failures: string[] }> = {};
for (const backend of backends) {
  const r = { runs, clean: 0, failures: [] as string[] };
  for (let i = 0; i < runs; i++) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      env: { AUTOPAR_WEBGPU: backend, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const line = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
    let ok = false;
    try {
      const parsed = JSON.parse(line);
      ok = parsed.ok === true && parsed.devices.every((b: string) => b === backend);
    } catch {
      ok = false;
    }
    if (out.success && out.signal === null && ok) r.clean++;
    else {
      const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
      r.failures.push(
        `run ${i}: code ${out.code}, signal ${out.signal}, ${line || "no result"}; ${err}`,
      );
    }
  }
  results[backend] = r;
  console.log(`${backend}: ${r.clean}/${r.runs} runs ended cleanly`);
  for (const f of r.failures) console.log(`  ${f}`);
}
await Deno.mkdir(new URL("./results/", import.meta.url), { recursive: true });
await Deno.writeTextFile(
  new URL("./results/exit_runs.json", import.meta.url),
  JSON.stringify({ date: new Date().toISOString(), results }, null, 2) + "\n",
);
