/**
 * Issue 22's goal as a test: no function of lib/ is over 80 lines (tools/function_lengths.ts
 * counts them), and the counter itself finds a long function, so the check can fail.
 *
 * @module
 */
import assert from "node:assert/strict";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import { functionSpans, longFunctions } from "../tools/function_lengths.ts";

const LIB = fileURLToPath(new URL("../lib", import.meta.url));

Deno.test("no function in lib/ is over 80 lines", async () => {
  const found = await longFunctions(LIB, 80);
  const listed = found.map((f) => `${relative(Deno.cwd(), f.path)}:${f.line} ${f.name} ${f.lines}`);
  assert.deepEqual(listed, [], `Functions over 80 lines:\n${listed.join("\n")}`);
});

/** `count` statement lines, each with braces inside strings and comments to ignore. */
function filler(count: number): string {
  return Array.from({ length: count }, (_, i) => `  const v${i} = "}{"; // } {\n`).join("");
}

Deno.test("longFunctions() lists the functions over the limit, longest first", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/nested`);
    await Deno.writeTextFile(
      `${root}/nested/long.ts`,
      [
        `export function short(): void {\n${filler(3)}}\n`,
        `export function long(a: number): { a: number } {\n${filler(85)}  return { a };\n}\n`,
        `const wgsl = (n: number) => \`fn main() {\n${"  }\n".repeat(90)}\`;\n`,
        `class Box {\n  get size(): number {\n${filler(81)}    return 1;\n  }\n}\n`,
      ].join(""),
    );
    await Deno.writeTextFile(`${root}/nested/types.d.ts`, `declare function f(): void;\n`);
    const found = await longFunctions(root, 80);
    assert.deepEqual(found, [
      { path: `${root}/nested/long.ts`, line: 94, name: "wgsl", lines: 92 },
      { path: `${root}/nested/long.ts`, line: 6, name: "long", lines: 88 },
      { path: `${root}/nested/long.ts`, line: 187, name: "get Box.size", lines: 84 },
    ]);
    assert.deepEqual(await longFunctions(root, 100), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("functionSpans() ignores braces in strings, templates, comments and regexes", () => {
  const source = [
    "/** } */",
    "export const re = /[}{]\\//g;",
    "class Kernel {",
    "  #cache = new Map<string, string>();",
    "  constructor(readonly n: number) {",
    "    this.#cache.set('}', `{${n > 1 ? `}` : '{'}`);",
    "  }",
    "  static async *lines<T>(xs: T[]): AsyncGenerator<T> {",
    "    for (const x of xs) yield x;",
    "  }",
    "  [Symbol.iterator] = () => {",
    "    return [].values();",
    "  };",
    "}",
    "const handlers = {",
    "  onMessage: (e: { data: string }) =>",
    "    e.data === '}' ? 1 : 2,",
    "  async close(): Promise<void> {",
    "  },",
    "};",
  ].join("\n");
  assert.deepEqual(functionSpans(source), [
    { line: 5, name: "Kernel.constructor", lines: 3 },
    { line: 8, name: "static Kernel.lines", lines: 3 },
    { line: 11, name: "Kernel.[Symbol.iterator]", lines: 3 },
    { line: 16, name: "onMessage", lines: 2 },
    { line: 18, name: "close", lines: 2 },
  ]);
});
