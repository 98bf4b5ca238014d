import assert from "node:assert/strict";
import { runExperiments } from "../../tools/experiments_report.ts";

Deno.test({
  name:
    "the quick experiments fill every table with finite numbers and write the Markdown and SVGs",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const outDir = await Deno.makeTempDir();
    const report = await runExperiments({ quick: true, outDir, log: null });
    assert.equal(report.sections.length, 5);
    for (const s of report.sections) {
      assert.ok(s.question.length > 0 && s.setup.length > 0 && s.reading.length > 0, s.title);
      assert.ok(s.tables.length > 0, `${s.title} has a table`);
      for (const t of s.tables) {
        assert.ok(t.rows.length > 0, `${s.title} has rows`);
        for (const row of t.rows) {
          assert.equal(row.length, t.columns.length, `${s.title}: a row has every column`);
          for (const [i, cell] of row.entries()) {
            if (typeof cell === "number") {
              assert.ok(Number.isFinite(cell), `${s.title}: ${t.columns[i]} is ${cell}`);
            } else assert.ok(cell.length > 0, `${s.title}: ${t.columns[i]} is empty`);
          }
        }
      }
      for (const r of s.reading) assert.doesNotMatch(r, /NaN|undefined|Infinity/, s.title);
      for (const p of s.plots) {
        assert.match(report.svgs[p.file], /^<svg/);
        assert.match(await Deno.readTextFile(`${outDir}/${p.file}`), /^<svg/);
        assert.ok(report.markdown.includes(`(${p.file})`), `the Markdown links ${p.file}`);
      }
    }
    assert.equal(await Deno.readTextFile(`${outDir}/experiments.md`), report.markdown);
    await Deno.remove(outDir, { recursive: true });
  },
});
