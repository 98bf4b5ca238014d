// `deno task experiments`: the chapter's exercises as experiments on the devices found;
// writes docs/experiments.md with an SVG plot beside each section.
//
//   deno task experiments [--quick] [--out DIR]
import { parseArgs } from "node:util";
import { runExperiments } from "../tools/experiments_report.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean" },
    out: { type: "string" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(
    "deno task experiments [--quick] [--out DIR]   (writes DIR/experiments.md, default docs)",
  );
  Deno.exit(0);
}
await runExperiments({ quick: values.quick ?? false, outDir: values.out ?? "docs" });
