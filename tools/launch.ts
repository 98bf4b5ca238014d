/**
 * The launcher's command line, like torchrun:
 *
 * ```sh
 * deno task launch --nproc 2 examples/train.ts --epochs 1
 * deno task launch --nproc 4 --nnodes 2 --node-rank 1 --master 10.0.0.5:4222 --job run7 train.ts
 * deno task launch --nproc 2 --dashboard --port 8000 train.ts   # the job's dashboard, one lane per rank
 * ```
 *
 * Exits with 0 when every rank does, with the failed rank's exit code when one fails (its
 * last stderr lines are printed), 2 for bad arguments, 130/143 after SIGINT/SIGTERM.
 *
 * @module
 */
import { launch, LaunchError } from "../lib/distributed/launch.ts";
import { LAUNCH_USAGE, parseLaunchArgs } from "../lib/distributed/launch_args.ts";

if (import.meta.main) {
  if (Deno.args.length === 0 || Deno.args[0] === "--help" || Deno.args[0] === "-h") {
    console.log(LAUNCH_USAGE);
    Deno.exit(Deno.args.length === 0 ? 2 : 0);
  }
  let code = 0;
  try {
    const result = await launch(parseLaunchArgs(Deno.args));
    console.error(`[launch] job ${result.job}: every rank exited with 0`);
  } catch (e) {
    if (e instanceof RangeError || e instanceof TypeError) {
      console.error(`[launch] ${e.message}\n${LAUNCH_USAGE}`);
      code = 2;
    } else {
      console.error(`[launch] ${e instanceof Error ? e.message : String(e)}`);
      code = e instanceof LaunchError ? e.exitCode : 1;
    }
  }
  Deno.exit(code);
}
