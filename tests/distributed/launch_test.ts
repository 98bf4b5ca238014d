import assert from "node:assert/strict";
import {
  ChildFailedError,
  launch,
  LaunchError,
  type LaunchOptions,
  type OutputLine,
} from "../../lib/distributed/launch.ts";
import { parseLaunchArgs } from "../../lib/distributed/launch_args.ts";
import { findLocalGpus, planAdapters } from "../../lib/distributed/adapters.ts";
import { freePort, probeNats, startNatsServer } from "../../lib/distributed/nats_server.ts";

const dir = await Deno.makeTempDir({ prefix: "autopar_launch_test_" });
const CLI = new URL("../../tools/launch.ts", import.meta.url).pathname;

/** Writes a child script into the temp dir and returns its path. */
async function script(name: string, source: string): Promise<string> {
  const path = `${dir}/${name}.ts`;
  await Deno.writeTextFile(path, source);
  return path;
}

/** Prints the launcher's variables as one JSON line. */
const PRINT_ENV = `
const names = ["RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "MASTER_ADDR",
  "MASTER_PORT", "AUTOPAR_NATS_URL", "AUTOPAR_JOB", "LP_NUM_THREADS"];
console.log(JSON.stringify(Object.fromEntries(names.map((n) => [n, Deno.env.get(n)]))));
`;

/** Sleeps until it is stopped; writes its pid to a file first (SIGTERM is ignored when asked). */
const SLEEP = `
if (Deno.args.includes("--ignore-sigterm")) Deno.addSignalListener("SIGTERM", () => {});
await Deno.writeTextFile(Deno.args[0] + "." + Deno.env.get("RANK"), String(Deno.pid));
console.log("up");
setInterval(() => {}, 1000);
`;

/** Launches and collects the lines; no output reaches the test's own streams. */
async function run(options: LaunchOptions) {
  const lines: OutputLine[] = [];
  const result = await launch({ onLine: (l) => lines.push(l), ...options });
  return { result, lines };
}

function rankLines(lines: OutputLine[], stream: "stdout" | "stderr"): OutputLine[] {
  return lines.filter((l) => l.rank !== undefined && l.stream === stream);
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z/.test(stat); // a zombie has exited
  } catch {
    return false;
  }
}

async function portClosed(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return false;
  } catch {
    return true;
  }
}

async function runCli(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("parseLaunchArgs reads the flags and passes everything after the script on", () => {
  const o = parseLaunchArgs([
    "--nproc=4",
    "--nnodes",
    "2",
    "--node-rank",
    "1",
    "--master",
    "10.0.0.5:4222",
    "--job",
    "run7",
    "train.ts",
    "--nproc",
    "9",
  ]);
  assert.deepEqual(o, {
    nproc: 4,
    nnodes: 2,
    nodeRank: 1,
    master: "10.0.0.5:4222",
    job: "run7",
    script: "train.ts",
    args: ["--nproc", "9"],
  });
  assert.equal(parseLaunchArgs(["--nproc-per-node", "2", "s.ts"]).nproc, 2);
});

Deno.test("parseLaunchArgs names the flag of a bad argument", () => {
  assert.throws(() => parseLaunchArgs(["--nprocs", "2", "s.ts"]), {
    name: "RangeError",
    message: /Cannot use option --nprocs: it is unknown; the options are --nproc/,
  });
  assert.throws(() => parseLaunchArgs(["--nproc"]), /Cannot use option --nproc: it needs a value/);
  assert.throws(() => parseLaunchArgs(["--nproc", "two", "s.ts"]), {
    name: "RangeError",
    message: 'Cannot use --nproc "two": it must be a number',
  });
  assert.throws(() => parseLaunchArgs(["--nproc", "2"]), /Cannot launch without a script/);
});

Deno.test("launch() rejects bad options before it starts anything", async () => {
  const s = await script("never", "throw new Error('must not run');");
  const cases: [Partial<LaunchOptions>, RegExp][] = [
    [{ nproc: 0 }, /Cannot use --nproc 0: it must be a whole number >= 1/],
    [{ nproc: 1.5 }, /Cannot use --nproc 1.5/],
    [{ nnodes: 2, nodeRank: 2, master: "h:1", job: "j" }, /--node-rank 2 with --nnodes 2/],
    [{ nnodes: 2, nodeRank: 1, job: "j" }, /Cannot launch 2 nodes without --master/],
    [{ nnodes: 2, nodeRank: 1, master: "h:1" }, /Cannot launch 2 nodes without --job/],
    [{ master: "localhost" }, /Cannot use --master "localhost": it must be host:port/],
    [{ master: "h:70000" }, /port 1-65535/],
    [{ job: "a b" }, /Cannot use job id "a b"/],
    [{ killTimeoutMs: -1 }, /Cannot use kill timeout -1/],
  ];
  for (const [options, message] of cases) {
    await assert.rejects(run({ script: s, ...options }), { name: "RangeError", message });
  }
  await assert.rejects(
    run({ script: `${dir}/missing.ts` }),
    /Cannot launch script ".*missing.ts": it does not exist/,
  );
});

Deno.test("each rank gets its RANK, WORLD_SIZE, LOCAL_RANK and the given --master and --job", async () => {
  await using server = await startNatsServer();
  const { result, lines } = await run({
    script: await script("env", PRINT_ENV),
    nproc: 3,
    nnodes: 2,
    nodeRank: 1,
    master: `127.0.0.1:${server.port}`,
    job: "job-env",
  });
  assert.equal(result.startedServer, false);
  assert.equal(result.server, undefined);
  assert.equal(result.url, server.url);
  assert.deepEqual(result.codes, [0, 0, 0]);
  const envs = rankLines(lines, "stdout").map((l) => ({ rank: l.rank, env: JSON.parse(l.text) }));
  envs.sort((a, b) => a.rank! - b.rank!);
  const threads = String(
    Deno.env.get("LP_NUM_THREADS") ?? Math.max(1, Math.floor(navigator.hardwareConcurrency / 3)),
  );
  assert.deepEqual(
    envs,
    [0, 1, 2].map((local) => ({
      rank: 3 + local,
      env: {
        RANK: String(3 + local),
        WORLD_SIZE: "6",
        LOCAL_RANK: String(local),
        LOCAL_WORLD_SIZE: "3",
        NODE_RANK: "1",
        MASTER_ADDR: "127.0.0.1",
        MASTER_PORT: String(server.port),
        AUTOPAR_NATS_URL: server.url,
        AUTOPAR_JOB: "job-env",
        LP_NUM_THREADS: result.adapters.kind === "software" ? threads : undefined,
      },
    })),
  );
});

Deno.test("without --master a local nats-server is started for the job and stopped after it", async () => {
  const child = await script(
    "info",
    `const conn = await Deno.connect({ hostname: Deno.env.get("MASTER_ADDR"), port: Number(Deno.env.get("MASTER_PORT")) });
const buf = new Uint8Array(4096);
const n = await conn.read(buf);
conn.close();
const info = JSON.parse(new TextDecoder().decode(buf.subarray(0, n!)).split("\\r\\n")[0].slice(5));
console.log(JSON.stringify({ jetstream: info.jetstream, job: Deno.env.get("AUTOPAR_JOB"), url: Deno.env.get("AUTOPAR_NATS_URL") }));`,
  );
  const { result, lines } = await run({ script: child, nproc: 2 });
  assert.equal(result.startedServer, true);
  assert.match(result.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
  const seen = rankLines(lines, "stdout").map((l) => JSON.parse(l.text));
  assert.equal(seen.length, 2);
  for (const s of seen) assert.deepEqual(s, { jetstream: true, job: result.job, url: result.url });
  assert.match(result.job, /^job-[0-9a-f-]{36}$/);
  assert.ok(await portClosed(result.server!.port), "the server's port is closed");
  await assert.rejects(Deno.stat(result.server!.storeDir), Deno.errors.NotFound);
  const again = await run({ script: child, nproc: 1 });
  assert.notEqual(again.result.job, result.job, "a fresh job id per launch");
});

Deno.test("--master that nothing listens on is an error naming its URL, and no rank starts", async () => {
  const port = freePort();
  const s = await script("never2", "console.log('ran');");
  const lines: OutputLine[] = [];
  await assert.rejects(
    launch({
      script: s,
      master: `127.0.0.1:${port}`,
      startTimeoutMs: 300,
      onLine: (l) => lines.push(l),
    }),
    new RegExp(`Cannot reach the NATS server at nats://127\\.0\\.0\\.1:${port} within 300 ms`),
  );
  assert.deepEqual(lines, []);
});

Deno.test("the CLI prefixes every line with its rank, on stdout and on stderr", async () => {
  const child = await script(
    "lines",
    `const r = Deno.env.get("RANK");
console.log("out a " + r); console.error("err a " + r);
console.log("out b " + r);
await Deno.stderr.write(new TextEncoder().encode("err tail " + r));`,
  );
  const { code, stdout, stderr } = await runCli(["--nproc", "2", child]);
  assert.equal(code, 0, stderr);
  const out = stdout.trimEnd().split("\n").sort();
  assert.deepEqual(out, [
    "[rank 0] out a 0",
    "[rank 0] out b 0",
    "[rank 1] out a 1",
    "[rank 1] out b 1",
  ]);
  const err = stderr.trimEnd().split("\n");
  for (const r of [0, 1]) {
    assert.ok(err.includes(`[rank ${r}] err a ${r}`), stderr);
    assert.ok(err.includes(`[rank ${r}] err tail ${r}`), stderr);
  }
  assert.ok(err.every((l) => /^\[(rank \d|launch)\] /.test(l)), stderr);
});

Deno.test("a failing rank stops a sleeping one, and the CLI exits with its code and error", async () => {
  const child = await script(
    "fail",
    `if (Deno.env.get("RANK") === "1") {
  await new Promise((r) => setTimeout(r, 200));
  console.error("Error: rank one ran out of luck");
  Deno.exit(3);
}
${SLEEP}`,
  );
  const pids = `${dir}/fail_pids`;
  const { code, stderr } = await runCli(["--nproc", "2", "--timeout-ms", "60000", child, pids]);
  assert.equal(code, 3, stderr);
  assert.match(stderr, /rank 1 exited with code 3; rank 0 was stopped; its last stderr lines:/);
  assert.match(stderr, /\n {2}Error: rank one ran out of luck/);
  const pid = Number(await Deno.readTextFile(`${pids}.0`));
  assert.ok(!alive(pid), `rank 0 (pid ${pid}) was stopped`);
});

Deno.test("a rank that ignores SIGTERM gets SIGKILL after killTimeoutMs", async () => {
  const child = await script(
    "stubborn",
    `if (Deno.env.get("RANK") === "1") {
  while (true) { try { Deno.statSync(Deno.args[0] + ".0"); break; } catch { await new Promise((r) => setTimeout(r, 20)); } }
  Deno.kill(Deno.pid, "SIGKILL");
}
${SLEEP}`,
  );
  const pids = `${dir}/stubborn_pids`;
  const lines: OutputLine[] = [];
  const error = await launch({
    script: child,
    args: [pids, "--ignore-sigterm"],
    nproc: 2,
    killTimeoutMs: 300,
    timeoutMs: 60_000,
    onLine: (l) => lines.push(l),
  }).catch((e) => e);
  assert.ok(error instanceof ChildFailedError, String(error));
  assert.equal(error.rank, 1);
  assert.equal(error.signal, "SIGKILL");
  assert.equal(error.exitCode, 137);
  assert.match(error.message, /rank 1 was killed by SIGKILL \(exit code 137\); rank 0 was stopped/);
  assert.ok(!alive(Number(await Deno.readTextFile(`${pids}.0`))), "rank 0 was killed");
});

Deno.test("SIGTERM to the launcher stops every rank and the server, and it exits 143", async () => {
  const child = await script("up", `console.log("port " + Deno.env.get("MASTER_PORT"));\n${SLEEP}`);
  const pids = `${dir}/term_pids`;
  const cli = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "--nproc", "2", child, pids],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const seen: string[] = [];
  const reader = cli.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (seen.filter((l) => l.endsWith(" up")).length < 2) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
    seen.splice(0, seen.length, ...text.split("\n"));
  }
  cli.kill("SIGTERM");
  const status = await cli.status;
  await reader.cancel();
  assert.equal(status.code, 143);
  const port = Number(/port (\d+)/.exec(text)![1]);
  assert.ok(await portClosed(port), "the local server is stopped");
  for (const r of [0, 1]) {
    const pid = Number(await Deno.readTextFile(`${pids}.${r}`));
    assert.ok(!alive(pid), `rank ${r} (pid ${pid}) was stopped`);
  }
});

Deno.test("a job past its timeoutMs is stopped with a LaunchError naming the ranks", async () => {
  const error = await run({
    script: await script("sleep", SLEEP),
    args: [`${dir}/timeout_pids`],
    nproc: 2,
    timeoutMs: 1500,
  }).catch((e) => e);
  assert.ok(error instanceof LaunchError && !(error instanceof ChildFailedError), String(error));
  assert.equal(error.exitCode, 124);
  assert.match(error.message, /within 1500 ms: ranks 0, 1 still ran and were stopped/);
});

Deno.test("the CLI exits 2 with the usage for bad arguments", async () => {
  const { code, stderr } = await runCli(["--nproc", "0", "x.ts"]);
  assert.equal(code, 2);
  assert.match(
    stderr,
    /Cannot use --nproc 0: it must be a whole number >= 1\nusage: deno task launch/,
  );
});

Deno.test("planAdapters splits the cores of a software adapter and keeps a given LP_NUM_THREADS", () => {
  assert.deepEqual(planAdapters([], 3, { cores: 16, deviceSelectLayer: true }).env, [
    { LP_NUM_THREADS: "5" },
    { LP_NUM_THREADS: "5" },
    { LP_NUM_THREADS: "5" },
  ]);
  assert.deepEqual(planAdapters([], 4, { cores: 2, deviceSelectLayer: true }).env[3], {
    LP_NUM_THREADS: "1",
  });
  const kept = planAdapters([], 2, { cores: 16, deviceSelectLayer: true, lpNumThreads: "3" });
  assert.deepEqual(kept.env[0], { LP_NUM_THREADS: "3" });
  assert.equal(kept.kind, "software");
});

Deno.test("planAdapters gives each rank its own GPU by PCI address, round-robin", () => {
  const gpus = ["0000:17:00.0", "0000:3d:00.0"].map((address, i) => ({
    address,
    vendor: "0x10de",
    node: `/dev/nvidia${i}`,
  }));
  const plan = planAdapters(gpus, 3, { cores: 16, deviceSelectLayer: true });
  assert.equal(plan.kind, "per-gpu");
  assert.deepEqual(plan.env.map((e) => e.DRI_PRIME), [
    "pci-0000_17_00_0",
    "pci-0000_3d_00_0",
    "pci-0000_17_00_0",
  ]);
  assert.ok(plan.env.every((e) => e.MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE === "1"));
  const one = planAdapters(gpus.slice(0, 1), 2, { cores: 16, deviceSelectLayer: true });
  assert.equal(one.kind, "shared");
  assert.deepEqual(one.env, [{}, {}]);
  const noLayer = planAdapters(gpus, 2, { cores: 16, deviceSelectLayer: false });
  assert.equal(noLayer.kind, "shared");
  assert.match(noLayer.summary, /device-select Vulkan layer is missing.*mesa-vulkan-drivers/);
});

Deno.test("findLocalGpus sees only the GPUs whose device nodes this process has", async () => {
  const root = await Deno.makeTempDir({ dir, prefix: "root_" });
  for (const [address, minor] of [["0000:17:00.0", 0], ["0000:3D:00.0", 1]] as const) {
    const d = `${root}/proc/driver/nvidia/gpus/${address.toLowerCase()}`;
    await Deno.mkdir(d, { recursive: true });
    await Deno.writeTextFile(
      `${d}/information`,
      `Model:\t\t NVIDIA H200\nBus Location:\t ${address}\nDevice Minor:\t ${minor}\n`,
    );
  }
  await Deno.mkdir(`${root}/dev/dri`, { recursive: true });
  await Deno.writeTextFile(`${root}/dev/nvidia1`, ""); // the container got GPU 1 only
  const pci = `${root}/sys/devices/pci0000:00/0000:c1:00.0`;
  await Deno.mkdir(pci, { recursive: true });
  await Deno.writeTextFile(`${pci}/vendor`, "0x1002\n");
  await Deno.mkdir(`${root}/sys/class/drm/renderD128`, { recursive: true });
  await Deno.symlink(pci, `${root}/sys/class/drm/renderD128/device`);
  await Deno.writeTextFile(`${root}/dev/dri/renderD128`, "");
  assert.deepEqual(findLocalGpus(root), [
    { address: "0000:3d:00.0", vendor: "0x10de", node: "/dev/nvidia1" },
    { address: "0000:c1:00.0", vendor: "0x1002", node: "/dev/dri/renderD128" },
  ]);
  assert.deepEqual(findLocalGpus(`${root}/nothing`), []);
});

Deno.test("startNatsServer reports max_payload and its stop() closes the port and removes the store", async () => {
  const server = await startNatsServer({ maxPayload: 64 * 1024 });
  assert.equal(server.maxPayload, 64 * 1024);
  assert.equal((await probeNats(server.url)).max_payload, 64 * 1024);
  await server.stop();
  await server.stop(); // idempotent
  assert.ok(await portClosed(server.port));
  await assert.rejects(Deno.stat(server.storeDir), Deno.errors.NotFound);
  await assert.rejects(
    startNatsServer({ executable: "autopar-no-such-nats-server" }),
    /Cannot start autopar-no-such-nats-server -js .*: it is not installed \(apt-get install -y nats-server\)/,
  );
});

globalThis.addEventListener("unload", () => {
  try {
    Deno.removeSync(dir, { recursive: true });
  } catch {
    // already gone
  }
});
