/**
 * `deno run -A tools/function_lengths.ts [root] [limit]`: lists every function, method, getter,
 * setter, constructor and arrow function bound to a name (a const, a class field, an object
 * property) in the .ts files under root (default `lib`) that spans more than limit lines
 * (default 80), as `path:line name lines`, longest first. A function's lines run from the line
 * of its name to the line of its body's closing brace, both included.
 *
 * The scan needs no TypeScript compiler: it blanks out comments, strings, template-literal text
 * and regular expressions, then matches brackets over the tokens that remain, so a brace inside
 * a WGSL template or a comment never counts.
 *
 *   deno run -A tools/function_lengths.ts lib 80
 *
 * @module
 */

/** A function longer than the limit, as {@link longFunctions} reports it. */
export interface LongFunction {
  /** The file, as root joined with its path below root (`lib/autograd/tape.ts`). */
  path: string;
  /** The 1-based line of the function's name. */
  line: number;
  /** The name: `name`, `Class.method`, `get Class.name` or `<anonymous>`. */
  name: string;
  /** Lines from the name to the closing brace, both included. */
  lines: number;
}

/**
 * Lists the functions of every .ts file under root longer than limit lines, longest first (then
 * by path and line). Rejects with the file system's error when root cannot be read.
 *
 * @example
 * ```ts ignore
 * import { longFunctions } from "./function_lengths.ts";
 *
 * for (const f of await longFunctions("lib", 80)) console.log(`${f.path}:${f.line} ${f.name}`);
 * ```
 */
export async function longFunctions(root: string, limit: number): Promise<LongFunction[]> {
  const found: LongFunction[] = [];
  for (const path of await tsFiles(root)) {
    const source = await Deno.readTextFile(path);
    for (const f of functionSpans(source)) {
      if (f.lines > limit) found.push({ path, ...f });
    }
  }
  return found.sort((a, b) =>
    b.lines - a.lines || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0) || a.line - b.line
  );
}

/** The .ts files below root (declaration files excluded), sorted by path. */
async function tsFiles(root: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(root)) {
    const path = `${root.replace(/\/+$/, "")}/${entry.name}`;
    if (entry.isDirectory) files.push(...await tsFiles(path));
    else if (entry.isFile && path.endsWith(".ts") && !path.endsWith(".d.ts")) files.push(path);
  }
  return files.sort();
}

/** A function found in one source text. */
export interface FunctionSpan {
  /** The 1-based line of the function's name. */
  line: number;
  /** The name, as in {@link LongFunction.name}. */
  name: string;
  /** Lines from the name to the end of the body, both included. */
  lines: number;
}

/**
 * Every named function of a TypeScript source text, in source order, whatever its length.
 *
 * @example
 * ```ts
 * import { functionSpans } from "./function_lengths.ts";
 *
 * const spans = functionSpans("function f() {\n  return `}`;\n}\n");
 * console.log(spans); // [{ line: 1, name: "f", lines: 3 }]
 * ```
 */
export function functionSpans(source: string): FunctionSpan[] {
  const scan = new Scan(tokenize(maskSource(source)));
  const spans: FunctionSpan[] = [];
  for (let k = 0; k < scan.tokens.length; k++) {
    const found = scan.functionAt(k);
    if (found === undefined) continue;
    const owner = scan.classes.filter((c) => c.open < k && k < c.close).pop();
    const name = owner === undefined ? found.name : qualify(owner.name, found.name);
    const line = scan.tokens[found.nameToken].line;
    spans.push({ line, name, lines: scan.tokens[found.end].line - line + 1 });
  }
  return spans;
}

/** `Class.method`, keeping a leading `get `/`set `/`static ` in front of the class name. */
function qualify(owner: string, name: string): string {
  const prefix = /^((?:static |get |set )*)(.*)$/.exec(name)!;
  return `${prefix[1]}${owner}.${prefix[2]}`;
}

/** A token of the masked source: its text and 1-based line. */
interface Token {
  text: string;
  line: number;
}

/** Words after which a `/` starts a regular expression rather than a division. */
const BEFORE_REGEX = new Set([
  "return",
  "typeof",
  "instanceof",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "case",
  "do",
  "else",
  "yield",
  "await",
]);

/**
 * The source with the text of comments, strings, template literals and regular expressions
 * replaced by spaces (newlines kept, so lines stay put). Quotes, backticks, the slashes of a
 * regular expression and the `${`/`}` of a template's substitutions stay, and so does the code
 * inside the substitutions.
 */
function maskSource(source: string): string {
  return new Masker(source).run();
}

/** The state of one {@link maskSource} pass: where it is, and what it has blanked. */
class Masker {
  readonly #source: string;
  readonly #out: string[];
  /** One entry per open `${`: the brace depth at which its closing `}` returns to the text. */
  readonly #templates: number[] = [];
  #depth = 0;
  #at = 0;
  #inTemplate = false;
  /** The last significant code character, or word, for the regular-expression rule. */
  #last = "";

  constructor(source: string) {
    this.#source = source;
    this.#out = source.split("");
  }

  /** Masks the whole source and returns it. */
  run(): string {
    while (this.#at < this.#source.length) {
      if (this.#inTemplate) this.#templateText();
      else this.#code();
    }
    return this.#out.join("");
  }

  /** Blanks the characters from from up to to, newlines kept, and moves past them. */
  #blank(from: number, to: number): void {
    for (let i = from; i < to; i++) if (this.#out[i] !== "\n") this.#out[i] = " ";
    this.#at = Math.max(this.#at, to);
  }

  /** Blanks a template's text up to its closing backtick or its next `${`, and steps past. */
  #templateText(): void {
    const source = this.#source;
    this.#blank(this.#at, templateTextEnd(source, this.#at));
    if (source[this.#at] === "`") {
      this.#inTemplate = false;
      this.#last = "`";
      this.#at++;
    } else if (this.#at < source.length) {
      this.#templates.push(this.#depth++);
      this.#inTemplate = false;
      this.#last = "{";
      this.#at += 2;
    }
  }

  /** Steps over one piece of code: a comment, a literal, a word or one character. */
  #code(): void {
    const source = this.#source;
    const i = this.#at;
    const c = source[i];
    const next = source[i + 1];
    if (c === "/" && next === "/") {
      const end = source.indexOf("\n", i);
      this.#blank(i, end < 0 ? source.length : end);
    } else if (c === "/" && next === "*") {
      const end = source.indexOf("*/", i + 2);
      this.#blank(i, end < 0 ? source.length : end + 2);
    } else if (c === '"' || c === "'") this.#literal(stringEnd(source, i, c), c);
    else if (c === "/" && startsRegex(this.#last)) this.#literal(regexEnd(source, i), "/");
    else if (c === "`") {
      this.#inTemplate = true;
      this.#at++;
    } else if (/[A-Za-z0-9_$#]/.test(c)) {
      let end = i;
      while (end < source.length && /[A-Za-z0-9_$#]/.test(source[end])) end++;
      this.#last = source.slice(i, end);
      this.#at = end;
    } else this.#punctuation(c);
  }

  /** Blanks a string or regular expression ending at end, keeping its delimiters. */
  #literal(end: number, delimiter: string): void {
    this.#blank(this.#at + 1, end - 1);
    this.#at = end;
    this.#last = delimiter;
  }

  /** Steps over one character of code, counting braces; a `}` may close a substitution. */
  #punctuation(c: string): void {
    if (c === "{") this.#depth++;
    if (c === "}") {
      this.#depth--;
      if (this.#templates.length > 0 && this.#templates.at(-1) === this.#depth) {
        this.#templates.pop();
        this.#inTemplate = true;
      }
    }
    if (!/\s/.test(c)) this.#last = c;
    this.#at++;
  }
}

/** The index of the backtick that ends a template's text, or of the `$` of its next `${`. */
function templateTextEnd(source: string, from: number): number {
  let i = from;
  while (i < source.length) {
    const c = source[i];
    if (c === "\\") i += 2;
    else if (c === "`" || (c === "$" && source[i + 1] === "{")) return i;
    else i++;
  }
  return source.length;
}

/** The index just past the closing quote of the string literal that opens at from. */
function stringEnd(source: string, from: number, quote: string): number {
  let i = from + 1;
  while (i < source.length) {
    const c = source[i];
    if (c === "\\") i += 2;
    else if (c === quote || c === "\n") return i + 1;
    else i++;
  }
  return source.length;
}

/** Whether a `/` after the given character or word starts a regular expression. */
function startsRegex(last: string): boolean {
  if (last === "") return true;
  if (/^[A-Za-z0-9_$#]/.test(last)) return BEFORE_REGEX.has(last);
  return !/[)\]}'"`]/.test(last);
}

/** The index just past a regular expression literal's closing slash (flags stay as code). */
function regexEnd(source: string, from: number): number {
  let i = from + 1;
  let inClass = false;
  while (i < source.length) {
    const c = source[i];
    if (c === "\\") i += 2;
    else if (c === "\n") return i;
    else if (inClass) {
      if (c === "]") inClass = false;
      i++;
    } else if (c === "[") {
      inClass = true;
      i++;
    } else if (c === "/") return i + 1;
    else i++;
  }
  return source.length;
}

/** The tokens of a masked source: words, `=>`, and single punctuation characters. */
function tokenize(masked: string): Token[] {
  const tokens: Token[] = [];
  const pattern = /\n|[A-Za-z0-9_$#]+|=>|[^\sA-Za-z0-9_$#]/g;
  let line = 1;
  for (const match of masked.matchAll(pattern)) {
    if (match[0] === "\n") line++;
    else tokens.push({ text: match[0], line });
  }
  return tokens;
}

/** A class or interface body: its name and the indices of its braces. */
interface BodyRange {
  name: string;
  open: number;
  close: number;
}

/** A function found at a token: its name, the token that names it, its last token. */
interface FoundFunction {
  name: string;
  nameToken: number;
  end: number;
}

/** A name that may start a function: its text, its first token, the token after it. */
interface Name {
  text: string;
  token: number;
  next: number;
}

/** Words that are never a method's name (`if (x) {` is not a method called `if`). */
const NOT_METHODS = new Set([
  "if",
  "for",
  "while",
  "switch",
  "catch",
  "with",
  "function",
  "return",
  "typeof",
  "await",
  "yield",
  "new",
  "super",
  "import",
]);

/** Words that may stand before a method's or a class field's name. */
const MODIFIERS = new Set([
  "async",
  "static",
  "get",
  "set",
  "public",
  "private",
  "protected",
  "readonly",
  "override",
  "abstract",
  "declare",
  "accessor",
  "*",
]);

/** The tokens of one source, their matched brackets, and the class and interface bodies. */
class Scan {
  /** The tokens of the masked source. */
  readonly tokens: Token[];
  /** For each `(`, `[` and `{` token, the index of its partner, and the other way round. */
  readonly partners: Map<number, number>;
  /** For each token, the index of the innermost bracket open around it (-1 at the top). */
  readonly enclosing: number[];
  /** The class bodies, outermost first. */
  readonly classes: BodyRange[];
  /** The indices of the `{` of class and interface bodies, where `name: T` is a type. */
  readonly typedBodies: Set<number>;

  constructor(tokens: Token[]) {
    this.tokens = tokens;
    this.partners = new Map();
    this.enclosing = [];
    this.#matchBrackets();
    this.classes = this.#bodies("class");
    this.typedBodies = new Set([...this.classes, ...this.#bodies("interface")].map((b) => b.open));
  }

  /** The text of token k, or "" past either end. */
  text(k: number): string {
    return this.tokens[k]?.text ?? "";
  }

  /** Pairs the brackets and records the innermost open bracket of every token. */
  #matchBrackets(): void {
    const open: number[] = [];
    const pairs: Record<string, string> = { ")": "(", "]": "[", "}": "{" };
    this.tokens.forEach((token, k) => {
      const top = open[open.length - 1];
      if (token.text in pairs) {
        // An unbalanced closer (a scan mistake) is skipped rather than pairing the wrong ones.
        if (top !== undefined && this.tokens[top].text === pairs[token.text]) {
          open.pop();
          this.partners.set(top, k);
          this.partners.set(k, top);
        }
      }
      this.enclosing.push(open[open.length - 1] ?? -1);
      if (token.text === "(" || token.text === "[" || token.text === "{") open.push(k);
    });
  }

  /** The bodies of the classes (or interfaces) of the source, outermost first. */
  #bodies(keyword: "class" | "interface"): BodyRange[] {
    const ranges: BodyRange[] = [];
    this.tokens.forEach((token, k) => {
      if (token.text !== keyword || this.text(k - 1) === ".") return;
      const word = this.text(k + 1);
      const name = isWord(word) && word !== "extends" && word !== "implements" ? word : "<class>";
      let open = k + 1;
      while (open < this.tokens.length && this.text(open) !== "{") {
        const text = this.text(open);
        if (text === ";" || text === ")" || text === "}") return;
        open = text === "(" || text === "[" ? (this.partners.get(open) ?? open) + 1 : open + 1;
      }
      const close = this.partners.get(open);
      if (close !== undefined) ranges.push({ name, open, close });
    });
    return ranges;
  }

  /** The token after the bracket group opening at k, or k + 1 when k opens none. */
  skip(k: number): number {
    const close = this.partners.get(k);
    return close !== undefined && close > k ? close + 1 : k + 1;
  }

  /** The function whose name (or `function` keyword) starts at token k, if there is one. */
  functionAt(k: number): FoundFunction | undefined {
    const text = this.text(k);
    if (text === "function") return this.#functionKeywordAt(k);
    const before = k === 0 ? ";" : this.text(k - 1);
    if (text === "[") return this.#memberAt(this.#computedName(k), before);
    if (!isWord(text) || /^[0-9]/.test(text)) return undefined;
    const name = { text, token: k, next: k + 1 };
    if (before === "const" || before === "let" || before === "var") {
      return this.#boundArrowAt(name, true);
    }
    if (before === ".") return this.#assignedArrowAt(k);
    return this.#memberAt(name, before);
  }

  /** A method, or an arrow bound to a field or property, named by name. */
  #memberAt(name: Name | undefined, before: string): FoundFunction | undefined {
    if (name === undefined) return undefined;
    const memberStart = before === "{" || before === "}" || before === ";" || before === "," ||
      MODIFIERS.has(before);
    if (!memberStart) return undefined;
    // In a class or interface body, a parameter list or a tuple type, `name:` starts a type.
    const enclosing = this.enclosing[name.token];
    const typed = this.typedBodies.has(enclosing) || /^[([]$/.test(this.text(enclosing));
    const method = NOT_METHODS.has(name.text) ? undefined : this.#methodAt(name);
    return method ?? this.#boundArrowAt(name, typed);
  }

  /** The name `[Symbol.iterator]` of a computed member whose `[` is token k. */
  #computedName(k: number): Name | undefined {
    const close = this.partners.get(k);
    if (close === undefined || close < k) return undefined;
    const inner = this.tokens.slice(k + 1, close).map((t) => t.text).join("");
    return { text: `[${inner}]`, token: k, next: close + 1 };
  }

  /** An arrow assigned to a member, `a.b.c = () => ...`, whose last name is token k. */
  #assignedArrowAt(k: number): FoundFunction | undefined {
    if (this.text(k + 1) !== "=") return undefined;
    let first = k;
    while (this.text(first - 1) === "." && isWord(this.text(first - 2))) first -= 2;
    const text = this.tokens.slice(first, k + 1).map((t) => t.text).join("");
    const found = this.#boundArrowAt({ text, token: k, next: k + 1 }, true);
    return found === undefined ? undefined : { ...found, nameToken: first };
  }

  /** A `function` declaration or expression; anonymous ones take the name they are bound to. */
  #functionKeywordAt(k: number): FoundFunction | undefined {
    let at = k + 1;
    if (this.text(at) === "*") at++;
    let nameToken = k;
    let name = "<anonymous>";
    if (isWord(this.text(at))) {
      nameToken = at;
      name = this.text(at);
      at++;
    } else if (/^[=:]$/.test(this.text(k - 1)) && isWord(this.text(k - 2))) {
      name = this.text(k - 2);
    }
    const end = this.#bodyAfterSignature(at);
    return end === undefined ? undefined : { name, nameToken, end };
  }

  /** A method, getter, setter or constructor called name. */
  #methodAt(name: Name): FoundFunction | undefined {
    let at = name.next;
    if (this.text(at) === "?" || this.text(at) === "!") at++;
    const end = this.#bodyAfterSignature(at);
    if (end === undefined) return undefined;
    const k = name.token;
    const accessor = this.text(k - 1);
    const prefix = accessor === "get" || accessor === "set" ? `${accessor} ` : "";
    const isStatic = [1, 2, 3].some((back) => this.text(k - back) === "static");
    return { name: `${isStatic ? "static " : ""}${prefix}${name.text}`, nameToken: k, end };
  }

  /**
   * The last token of a body that follows a signature starting at token at: optional type
   * parameters, a parenthesised parameter list, an optional return type, then `{ ... }`.
   */
  #bodyAfterSignature(at: number): number | undefined {
    let k = at;
    if (this.text(k) === "<") k = this.#skipAngles(k);
    if (this.text(k) !== "(") return undefined;
    k = this.skip(k);
    if (this.text(k) === ":") k = this.#skipType(k + 1, (t) => t === "{");
    if (this.text(k) !== "{") return undefined;
    return this.partners.get(k);
  }

  /**
   * An arrow (or function expression) bound to name: `name = ...`, or `name: ...`, where the
   * `:` starts a type when typed holds (a variable, a class field) and a value otherwise (an
   * object's property).
   */
  #boundArrowAt(name: Name, typed: boolean): FoundFunction | undefined {
    let at = name.next;
    if (this.text(at) === "?" || this.text(at) === "!") at++;
    if (this.text(at) === ":" && typed) {
      at = this.#skipType(at + 1, (t) => t === "=" || t === "," || t === ";");
    }
    if (this.text(at) !== "=" && this.text(at) !== ":") return undefined;
    const end = this.#arrowAfter(at + 1);
    return end === undefined ? undefined : { name: name.text, nameToken: name.token, end };
  }

  /** The last token of an arrow function that starts at token at, if one starts there. */
  #arrowAfter(at: number): number | undefined {
    let k = at;
    if (this.text(k) === "async") k++;
    if (this.text(k) === "<") k = this.#skipAngles(k);
    if (this.text(k) === "(") {
      k = this.skip(k);
      if (this.text(k) === ":") k = this.#skipType(k + 1, (t) => t === "=>");
    } else if (isWord(this.text(k))) k++;
    else return undefined;
    if (this.text(k) !== "=>") return undefined;
    k++;
    if (this.text(k) === "{") return this.partners.get(k);
    return this.#expressionEnd(k);
  }

  /** The last token of an expression body: up to a `;` or `,` at its own level, or a closer. */
  #expressionEnd(at: number): number {
    let k = at;
    while (k < this.tokens.length) {
      if ([";", ",", ")", "]", "}"].includes(this.text(k))) return Math.max(at, k - 1);
      k = this.skip(k);
    }
    return this.tokens.length - 1;
  }

  /** The index past the `>` that closes the type parameters opening at token at. */
  #skipAngles(at: number): number {
    let depth = 0;
    let k = at;
    while (k < this.tokens.length) {
      const text = this.text(k);
      if (text === "<") depth++;
      else if (text === ">" && --depth === 0) return k + 1;
      else if (text === ";" || text === "}") return k;
      k = this.skip(k);
    }
    return k;
  }

  /**
   * The index of the token that ends a type starting at token at: the first token, outside
   * brackets, for which stop holds, or a closer. A `{` right after `:`, `|`, `&`, `,`, `<`,
   * `=>` or `keyof` opens an object type, so it is skipped rather than taken as a body.
   */
  #skipType(at: number, stop: (text: string) => boolean): number {
    let angles = 0;
    let k = at;
    let previous = ":";
    while (k < this.tokens.length) {
      const text = this.text(k);
      const typeStart = ["|", "&", ",", "<", ":", "=>", "?", "keyof", "typeof"].includes(previous);
      if (angles === 0 && stop(text) && !(text === "{" && typeStart)) return k;
      if (text === "<") angles++;
      else if (text === ">" && angles > 0) angles--;
      else if (angles === 0 && [";", ")", "]", "}"].includes(text)) return k;
      const next = this.skip(k);
      previous = this.text(next - 1);
      k = next;
    }
    return k;
  }
}

/** Whether a token is a word (an identifier, keyword or number). */
function isWord(text: string): boolean {
  return /^[A-Za-z0-9_$#]+$/.test(text);
}

if (import.meta.main) {
  const [root = "lib", limitText = "80"] = Deno.args;
  const limit = Number(limitText);
  if (!Number.isInteger(limit) || limit < 0) {
    throw new RangeError(`Cannot scan as the limit "${limitText}" is not a whole number`);
  }
  const found = await longFunctions(root, limit);
  for (const f of found) console.log(`${f.path}:${f.line} ${f.name} ${f.lines}`);
  if (found.length === 0) console.log(`No function under ${root} is over ${limit} lines.`);
}
