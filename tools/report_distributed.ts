/**
 * The section of docs/performance.md on the process group across processes (issue 19), from
 * bench/results/distributed.json (bench/distributed.ts). Every number is read from the JSON.
 *
 * @module
 */
import { BenchFile, fixed, num, renderTable, runLine } from "./report_format.ts";

const met = (ok: boolean) => ok ? "met" : "missed";

const KiB = 1024, MiB = KiB * KiB;
/** `4194304` -> `"4 MiB"`, `1024` -> `"1 KiB"`. */
const size = (bytes: number) => bytes >= MiB ? `${bytes / MiB} MiB` : `${bytes / KiB} KiB`;

/** The JSON's goals, as bench/distributed.ts writes them. */
interface Goals {
  ranks: number;
  bytes: number;
  overNatsBlast: number;
  overGloo: number;
  ddpOverDataParallel: number;
  dataParallelOverOneDevice: number;
}

/** The all-reduce table: one row per rank count and size. */
function allReduceRows(f: BenchFile): string[][] {
  const ranks = Object.keys(f.get("allReduceMs") as Record<string, unknown>);
  return ranks.flatMap((n) => {
    const sizes = Object.keys(f.get(`allReduceMs.${n}.ms`) as Record<string, unknown>);
    return sizes.map((b) => {
      const ms = (v: string) => f.num(`allReduceMs.${n}.ms.${b}.${v}`);
      const gloo = f.has(`allReduceMs.${n}.ms.${b}.gloo`) ? ms("gloo") : undefined;
      return [
        n,
        size(Number(b)),
        ...["processGroup", "processGroupRing", "tensor", "natsBlast", "natsForward"].map((v) =>
          num(ms(v))
        ),
        gloo === undefined ? "-" : num(gloo),
        `${fixed(ms("processGroup") / ms("natsBlast"), 2)}x`,
        gloo === undefined ? "-" : `${fixed(ms("processGroup") / gloo, 2)}x`,
      ];
    });
  });
}

/** The goal line of the all-reduce (its ranks and size), from the JSON's goal figures. */
function allReduceGoal(f: BenchFile, g: Goals): string {
  const overNats = f.num("goal4Ranks4MiB.overNatsBlast");
  const overGloo = f.get("goal4Ranks4MiB.overGloo");
  const gloo = typeof overGloo === "number"
    ? `≤ ${g.overGloo}x gloo: ${met(overGloo <= g.overGloo)}** (${fixed(overGloo, 2)}x)`
    : `≤ ${g.overGloo}x gloo: not measured** (${f.get("glooSkipped")})`;
  return `- **${g.ranks} ranks, ${
    size(g.bytes)
  }: allReduce ≤ ${g.overNatsBlast}x the raw NATS transfer: ${
    met(overNats <= g.overNatsBlast)
  }** (${fixed(overNats, 2)}x; the ring ${
    fixed(f.num("goal4Ranks4MiB.ringOverNatsBlast"), 2)
  }x); **${gloo}.`;
}

/** The MLP's samples/s and its two goals; a line saying so when the run skipped it. */
function mlpPart(f: BenchFile, g: Goals): string[] {
  if (f.get("mlpSamplesPerSecond") === null) return ["The MLP was not measured in this run."];
  const m = (k: string) => f.num(`mlpSamplesPerSecond.${k}`);
  const ddp = m("ddpOverDataParallel"), dp = m("dataParallelOverOneDevice");
  return [
    `The chapter's MLP (784-256-10, batch ${m("batchPerProcess")} per process, SGD), samples/s on ${
      f.get("mlpSamplesPerSecond.device")
    }:`,
    renderTable([
      "1 process, 1 device",
      "1 process, DataParallel on 2 devices",
      "2 processes x 1 device (DDP)",
      `DDP / DataParallel (goal ≥ ${g.ddpOverDataParallel})`,
      `DataParallel / 1 device (goal ≥ ${g.dataParallelOverOneDevice})`,
    ], [[
      num(m("oneProcessOneDevice")),
      num(m("oneProcessDataParallelTwoDevices")),
      num(m("twoProcessesDistributedDataParallel")),
      `${fixed(ddp, 2)}x ${met(ddp >= g.ddpOverDataParallel)}`,
      `${fixed(dp, 2)}x ${met(dp >= g.dataParallelOverOneDevice)}`,
    ]]),
  ];
}

/** The distributed section's body. */
export function distributed([f]: BenchFile[]): string {
  const g = f.get("goals") as Goals;
  const ranks = Object.keys(f.get("allReduceMs") as Record<string, unknown>);
  const exact = ranks.every((n) => f.get(`allReduceMs.${n}.exact`) === true);
  const glooExact = ranks.every((n) => f.get(`allReduceMs.${n}.glooExact`) !== false);
  const torch = f.get("torch");
  return [
    runLine({
      command: String(f.get("command")),
      file: f.file,
      date: f.get("date"),
      notes: [
        String(f.get("machine")),
        `one local nats-server, max_payload ${num(f.num("maxPayload"))} bytes`,
        torch === null ? "no torch" : `torch ${torch} for gloo`,
      ],
    }),
    `Every rank is a process of its own on the same machine, through the launcher and one NATS server. Times are ms, the median over ${
      f.num("reps")
    } repetitions (fewer for the largest sizes) of the slowest rank's time, each after a barrier. "allReduce" is \`ProcessGroup.allReduce\` (sum) on a host Float32Array with the default algorithm, "ring" the same with \`AUTOPAR_ALLREDUCE=ring\`, "tensor" \`allReduce(tensor)\` on a host tensor; the NATS columns move the bytes a ring moves without reducing (every chunk at once, or chunk by chunk as each arrives), on a second connection of the same processes; gloo is \`torch.distributed.all_reduce\` over TCP between the same number of processes.`,
    renderTable([
      "ranks",
      "size",
      "allReduce",
      "ring",
      "tensor",
      "NATS, all chunks at once",
      "NATS, chunk by chunk",
      "gloo",
      "allReduce / NATS",
      "allReduce / gloo",
    ], allReduceRows(f)),
    [
      allReduceGoal(f, g),
      `- Results exact and identical on every rank: ${exact ? "yes" : "no"}${
        torch === null ? "" : `; gloo's results exact: ${glooExact ? "yes" : "no"}`
      }.`,
    ].join("\n"),
    ...mlpPart(f, g),
  ].join("\n\n");
}
