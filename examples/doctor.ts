// `deno task doctor`: what this machine gives autopar. The GPUs the driver sees, the Vulkan
// drivers installed, and for each WebGPU backend (Deno's navigator.gpu, Dawn from
// npm:webgpu), in a process of its own since one process runs one backend: whether it
// starts, the adapters it sees, the latency of a small readback, and the chapter's workload
// (50 products of an n x n matrix on each device, all devices at once) in GFLOP/s.
//
//   deno task doctor [--backend deno|dawn|auto|both] [--size N] [--devices N]
//
// n is the chapter's 4000 on a GPU and 256 on a software adapter (llvmpipe), unless --size.
import { parseArgs } from "node:util";
import { benchmark, closeDevices, type Device, rand, synchronize, tryAllGpus } from "../mod.ts";

const USAGE = "deno task doctor [--backend deno|dawn|auto|both] [--size N] [--devices N]";
const { values } = parseArgs({
  args: Deno.args,
  options: {
    backend: { type: "string", default: "both" },
    size: { type: "string" },
    devices: { type: "string" },
    child: { type: "string" }, // internal: the backend this process checks
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(USAGE);
  Deno.exit(0);
}

/** A whole number >= 1 from a flag, or undefined; exits with a message for anything else. */
function wholeNumber(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} must be a whole number >= 1, got "${raw}". Usage: ${USAGE}`);
    Deno.exit(2);
  }
  return n;
}
const size = wholeNumber("size", values.size);
const count = wholeNumber("devices", values.devices);

/** What a backend's check found, sent from its process on the line after MARK. */
interface BackendReport {
  backend: string;
  started: boolean;
  reason?: string;
  adapter?: string;
  software?: boolean;
  devices?: number;
  readbackMs?: number;
  size?: number;
  gflopsPerDevice?: number[];
}
const MARK = "doctor-report ";

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** The check of one backend, run in its own process. */
async function checkBackend(backend: "deno" | "dawn" | "auto"): Promise<BackendReport> {
  const report: BackendReport = { backend, started: false };
  const t = performance.now();
  let devices: Device[];
  try {
    devices = await tryAllGpus({ backend, ...(count ? { count } : {}) });
  } catch (e) {
    report.reason = (e instanceof Error ? e.message : String(e)).split("\n")[0];
    console.log(`${backend}: cannot start: ${report.reason}`);
    return report;
  }
  if (devices.length === 0) {
    report.reason = "no WebGPU adapter";
    console.log(`${backend}: cannot start: it found no WebGPU adapter`);
    return report;
  }
  const [d0] = devices;
  Object.assign(report, {
    started: true,
    backend: d0.info.backend,
    adapter: d0.info.adapter,
    software: d0.info.software,
    devices: devices.length,
  });
  console.log(
    `${d0.info.backend}: started ${devices.length} device(s) in ` +
      `${((performance.now() - t) / 1000).toFixed(2)} s`,
  );
  for (const d of devices) {
    const { info } = d;
    const threads = info.threads ? `, ${info.threads} thread(s)` : "";
    const timing = info.features.includes("timestamp-query") ? ", timestamp-query" : "";
    console.log(
      `  ${d.name}: ${info.adapter} (${info.software ? "software" : "hardware"}${threads}), ` +
        `${info.features.length} features${timing}`,
    );
  }
  // Dawn lists every adapter it can open; the device carries that list beside its info.
  const listed = (d0 as { listed?: readonly { name: string; api: string }[] }).listed;
  if (d0.info.backend === "dawn" && listed && listed.length > 0) {
    console.log(`  adapters Dawn lists: ${listed.map((a) => `${a.name} (${a.api})`).join("; ")}`);
  }

  const x = rand([1024], { device: d0, seed: 1 });
  const times: number[] = [];
  for (let i = 0; i < 25; i++) {
    const y = x.add(x);
    const start = performance.now();
    await y.data();
    if (i >= 5) times.push(performance.now() - start);
    y.dispose();
  }
  x.dispose();
  report.readbackMs = median(times);
  console.log(`  readback of a small result: ${report.readbackMs.toFixed(2)} ms (median of 20)`);

  const n = size ?? (d0.info.software ? 256 : 4000);
  const iters = 50;
  report.size = n;
  const scaled = size === undefined && d0.info.software
    ? " (scaled down from the chapter's 4000: the adapter is software)"
    : "";
  console.log(`  workload: ${iters} products of ${n}x${n} on each device, all at once${scaled}`);
  const xs = devices.map((device, i) => rand([n, n], { device, seed: i + 1 }));
  for (const x of xs) for (let i = 0; i < 2; i++) x.mm(x).dispose(); // compiles, allocates
  await synchronize();
  const t0 = performance.now();
  let seconds: number[];
  {
    await using _ = benchmark(`  ${devices.map((d) => d.name).join(" & ")}`);
    for (const x of xs) for (let i = 0; i < iters; i++) x.mm(x).dispose();
    seconds = await Promise.all(devices.map(async (d) => {
      await synchronize(d);
      return (performance.now() - t0) / 1000;
    }));
  }
  xs.forEach((x) => x.dispose());
  report.gflopsPerDevice = seconds.map((s) => iters * 2 * n ** 3 / s / 1e9);
  for (const [i, d] of devices.entries()) {
    console.log(
      `  ${d.name}: ${report.gflopsPerDevice[i].toFixed(2)} GFLOP/s (done after ` +
        `${seconds[i].toFixed(3)} s)`,
    );
  }
  return report;
}

if (values.child !== undefined) {
  const b = values.child;
  if (b !== "deno" && b !== "dawn" && b !== "auto") throw new RangeError(`bad --child ${b}`);
  let report: BackendReport;
  try {
    report = await checkBackend(b);
  } catch (e) {
    const reason = (e instanceof Error ? e.message : String(e)).split("\n")[0];
    console.log(`${b}: failed while checking: ${reason}`);
    report = { backend: b, started: false, reason };
  }
  console.log(MARK + JSON.stringify(report));
  await closeDevices();
  Deno.exit(0);
}

const choice = values.backend;
if (!["deno", "dawn", "auto", "both"].includes(choice)) {
  console.error(`--backend must be deno, dawn, auto or both, got "${choice}". Usage: ${USAGE}`);
  Deno.exit(2);
}

/** The output of a command, or undefined when it is not installed. */
async function tryCommand(cmd: string, args: string[]): Promise<Deno.CommandOutput | undefined> {
  try {
    return await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  } catch {
    return undefined;
  }
}
const text = (b: Uint8Array) => new TextDecoder().decode(b).trim();

console.log(`autopar doctor: Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores\n`);
const smi = await tryCommand("nvidia-smi", ["-L"]);
if (!smi) console.log("nvidia-smi: not found (no NVIDIA driver on PATH)");
else {
  console.log(`nvidia-smi -L${smi.success ? "" : ` (exit ${smi.code})`}:`);
  for (const l of text(smi.stdout || smi.stderr).split("\n")) console.log(`  ${l}`);
}
for (const dir of ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"]) {
  const lines: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.name.endsWith(".json")) continue;
      let what = "";
      try {
        const icd = JSON.parse(await Deno.readTextFile(`${dir}/${e.name}`)).ICD ?? {};
        what = ` -> ${icd.library_path ?? "?"}${
          icd.api_version ? `, Vulkan ${icd.api_version}` : ""
        }`;
      } catch {
        what = " (unreadable)";
      }
      lines.push(`  ${e.name}${what}`);
    }
  } catch {
    // no such folder
  }
  console.log(`Vulkan drivers in ${dir}:${lines.length === 0 ? " none" : ""}`);
  for (const l of lines.sort()) console.log(l);
}
const mesa = await tryCommand("dpkg-query", ["-W", "-f", "${Version}", "mesa-vulkan-drivers"]);
if (mesa?.success) {
  console.log(`mesa-vulkan-drivers ${text(mesa.stdout)} (Dawn needs Mesa 25's lavapipe or newer)`);
}
const env = [
  "AUTOPAR_WEBGPU",
  "AUTOPAR_DEVICES",
  "LP_NUM_THREADS",
  "VK_ICD_FILENAMES",
  "DAWNNODE_BACKEND",
]
  .filter((k) => Deno.env.get(k) !== undefined).map((k) => `${k}=${Deno.env.get(k)}`);
if (env.length > 0) console.log(`environment: ${env.join(" ")}`);

/** Dawn's limit warnings and Deno's npm notice: printed by every healthy Dawn process. */
const NOISE = [
  /artificially reduced from \d+ to \d+/,
  /[╭╰│]|Ignored build scripts|npm:webgpu@|Lifecycle scripts|nodeModulesDir|deno config file/,
];

/** Runs one backend's check in a process of its own, echoing its lines as they come. */
async function runChild(backend: string): Promise<BackendReport> {
  const args = ["run", "-A", import.meta.url, "--child", backend];
  if (size) args.push("--size", String(size));
  if (count) args.push("--devices", String(count));
  const child = new Deno.Command(Deno.execPath(), {
    args,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal: AbortSignal.timeout(180_000),
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let report: BackendReport | undefined;
  let pending = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const l of lines) {
      if (l.startsWith(MARK)) report = JSON.parse(l.slice(MARK.length));
      else console.log(l);
    }
  }
  const status = await child.status;
  const errors = (await stderr).split("\n").filter((l) =>
    l.trim() !== "" && !NOISE.some((re) => re.test(l))
  );
  if (!report) {
    const how = status.signal ? `was killed (${status.signal})` : `exited with ${status.code}`;
    console.log(`${backend}: cannot start: its process ${how} before reporting`);
    for (const l of errors.slice(-8)) console.log(`  ${l}`);
    return { backend, started: false, reason: `process ${how}` };
  }
  if (!status.success) {
    console.log(`  (${backend}'s process exited with ${status.code} after its checks)`);
  }
  if (!report.started && errors.length > 0) {
    for (const l of errors.slice(-4)) console.log(`  ${l}`);
  }
  return report;
}

const reports: BackendReport[] = [];
for (const b of choice === "both" ? ["deno", "dawn"] : [choice]) {
  console.log("");
  reports.push(await runChild(b));
}
console.log("\nsummary:");
for (const r of reports) {
  if (!r.started) {
    console.log(`  ${r.backend}: does not start (${r.reason?.split(". To fix:")[0]})`);
    continue;
  }
  const g = r.gflopsPerDevice ?? [];
  console.log(
    `  ${r.backend}: ${r.adapter} (${r.software ? "software" : "hardware"}), ${r.devices} ` +
      `device(s); readback ${r.readbackMs?.toFixed(2)} ms; ${r.size}x${r.size} products ` +
      `${g.map((x) => x.toFixed(1)).join(" + ")} GFLOP/s`,
  );
}
Deno.exit(reports.some((r) => r.started) ? 0 : 1);
