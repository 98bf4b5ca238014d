import assert from "node:assert/strict";
import { BenchFile, renderTable } from "../../tools/report_format.ts";
import { anchor, generateReport, replaceHeadlines, ROOT } from "../../tools/report.ts";
import { SECTIONS } from "../../tools/report_sections.ts";

const read = (path: string) => Deno.readTextFile(new URL(path, ROOT));

Deno.test("the checked-in docs/performance.md and README.md are what deno task report generates", async () => {
  const report = await generateReport();
  assert.equal(
    await read("docs/performance.md"),
    report.performance,
    "docs/performance.md drifted from bench/results/: run `deno task report`",
  );
  assert.equal(
    await read("README.md"),
    report.readme,
    "README.md's headline figures drifted from bench/results/: run `deno task report`",
  );
});

Deno.test("generating the report twice gives the same files", async () => {
  const [a, b] = [await generateReport(), await generateReport()];
  assert.equal(a.performance, b.performance);
  assert.equal(a.readme, b.readme);
});

Deno.test("every bench/results/*.json file has a section of docs/performance.md", async () => {
  const performance = await read("docs/performance.md");
  for await (const e of Deno.readDir(new URL("bench/results/", ROOT))) {
    if (!e.name.endsWith(".json")) continue;
    assert.ok(
      performance.includes(`(../bench/results/${e.name})`),
      `docs/performance.md does not cite bench/results/${e.name}`,
    );
  }
});

Deno.test("the matmul section renders its table from the JSON's rows", () => {
  const spec = SECTIONS.find((s) => s.title === "The matmul kernel");
  assert.ok(spec);
  const json = {
    date: "2030-01-02T03:04:05.000Z",
    adapter: "Fake GPU",
    lpNumThreads: "1",
    timing: "timestamp-query",
    tiling: { tm: 8, tn: 8, wx: 2, wy: 2 },
    rows: [{ size: 64, matmul: 12.345, reference: 6.1, ratio: 2.0237, reps: 3 }],
    variants: [{ shape: "64^3 A*B", variant: "8x8@2x2|nn|vv", gflops: 11 }],
  };
  const body = spec.render([new BenchFile("bench/results/matmul.json", json)]);
  assert.ok(body.includes('Run of 2030-01-02 03:04 UTC; adapter "Fake GPU"'), body);
  assert.ok(body.includes("`deno run -A bench/matmul.ts`"));
  assert.ok(body.includes("tiling `8x8@2x2`"));
  assert.ok(
    body.includes(
      [
        "| size | autopar matmul | reference   | ratio | repetitions |",
        "| ---- | -------------- | ----------- | ----- | ----------- |",
        "| 64   | 12.3 GFLOP/s   | 6.1 GFLOP/s | 2.02x | 3           |",
      ].join("\n"),
    ),
    body,
  );
  assert.ok(body.includes("| 64^3 A*B | `8x8@2x2\\|nn\\|vv` | 11.0 GFLOP/s   |"), body);
});

Deno.test("a section names the field its JSON lacks", () => {
  const spec = SECTIONS.find((s) => s.title === "The matmul kernel")!;
  assert.throws(
    () => spec.render([new BenchFile("bench/results/matmul.json", { date: "2030-01-02T03:04Z" })]),
    /Cannot read rows of bench\/results\/matmul.json: the field is missing/,
  );
});

Deno.test("renderTable pads columns and refuses a row of the wrong width", () => {
  assert.equal(
    renderTable(["a", "long header"], [["wide cell", "x"]]),
    "| a         | long header |\n| --------- | ----------- |\n| wide cell | x           |",
  );
  assert.throws(() => renderTable(["a", "b"], [["1"]]), RangeError);
});

Deno.test("replaceHeadlines refuses a README without its markers", () => {
  assert.throws(() => replaceHeadlines("# no markers\n", "- x"), /markers/);
});

/** Every relative link of a Markdown file: `[text](target)` and `![alt](target)`. */
function relativeLinks(markdown: string): string[] {
  const withoutCode = markdown.replace(/```[\s\S]*?```/g, "").replace(/`[^`\n]*`/g, "");
  return [...withoutCode.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]).filter((t) =>
    !/^[a-z]+:/.test(t)
  );
}

/** The GitHub anchors of a Markdown file's headings. */
function anchors(markdown: string): Set<string> {
  const withoutCode = markdown.replace(/```[\s\S]*?```/g, "");
  return new Set([...withoutCode.matchAll(/^#+ (.+)$/gm)].map((m) => anchor(m[1])));
}

for (const page of ["README.md", "docs/performance.md", "docs/api.md", "docs/how_it_works.md"]) {
  Deno.test(`every relative link of ${page} resolves, anchors included`, async () => {
    const base = new URL(page, ROOT);
    const links = relativeLinks(await read(page));
    assert.ok(links.length > 0, `${page} has no relative links to check`);
    for (const link of links) {
      const [path, hash] = link.split("#");
      const target = path === "" ? base : new URL(path, base);
      const stat = await Deno.stat(target).catch(() => null);
      assert.ok(stat, `${page} links to ${link}, which does not exist`);
      if (hash !== undefined && stat.isFile && target.pathname.endsWith(".md")) {
        const text = await Deno.readTextFile(target);
        assert.ok(anchors(text).has(hash), `${page} links to ${link}: no heading has that anchor`);
      }
    }
  });
}
