// A small SQL expression language shared by the batch and the online path. Filter predicates and the Expr
// operator are parsed once; the same tree is printed as DuckDB SQL (batch) and evaluated in JS (transformRow),
// so both paths agree. Supported: numbers, 'strings', TRUE/FALSE/NULL, column names (bare or "quoted"),
// + - * / % ||, = == != <> < <= > >=, AND OR NOT, IS [NOT] NULL, [NOT] IN (...), CASE WHEN ... THEN ... [ELSE] END,
// and the functions listed in FUNCTIONS (epoch(t): seconds since the epoch of a timestamp, a Date online). Semantics follow DuckDB: NULL propagates, three-valued logic,
// x % 0 is NULL, least/greatest/coalesce skip NULLs; ln/log10/sqrt of an out-of-domain value give NULL
// (DuckDB would raise: the printed SQL guards them).
// It lives in common/ because the feature store's vector search filters with it too (a lower layer than the ETL).
import { ValidationError } from "./errors.js";
import { ident, sqlString } from "./duckdb.js";

export type Value = string | number | bigint | boolean | null | Date | Value[];
export type Row = Record<string, Value | undefined>;

/** A SQL literal for a JS value (strings quoted, bigints exact, null as NULL). */
export function literal(v: Value | undefined): string {
  if (v === null || v === undefined) return "NULL";
  if (typeof v === "string") return sqlString(v);
  if (typeof v === "bigint") return v.toString();
  if (typeof v === "number") {
    if (Number.isNaN(v)) return "'NaN'::DOUBLE";
    if (!Number.isFinite(v)) return v > 0 ? "'Infinity'::DOUBLE" : "'-Infinity'::DOUBLE";
    // through a string, so DuckDB parses the shortest round-trip text to the same double
    return Number.isInteger(v) && Math.abs(v) < 2 ** 53 ? String(v) : `'${v}'::DOUBLE`;
  }
  if (typeof v === "boolean") return v ? "TRUE" : "FALSE";
  if (v instanceof Date) return `TIMESTAMP '${v.toISOString().replace("T", " ").replace("Z", "")}'`;
  return `[${v.map(literal).join(", ")}]`;
}

/** A parsed expression: the tree the Expr and Filter operators print as SQL and evaluate in JS. */
export type ExprNode =
  | { k: "lit"; v: Value }
  | { k: "col"; name: string }
  | { k: "un"; op: "-" | "NOT"; a: ExprNode }
  | { k: "bin"; op: string; a: ExprNode; b: ExprNode }
  | { k: "isnull"; a: ExprNode; not: boolean }
  | { k: "in"; a: ExprNode; list: ExprNode[]; not: boolean }
  | { k: "case"; whens: Array<[ExprNode, ExprNode]>; else: ExprNode | null }
  | { k: "fn"; name: string; args: ExprNode[] };

type Num = number;
type Fn = { arity: [number, number]; sql: (a: string[]) => string; js: (a: Value[]) => Value };

const num = (v: Value): Num => (typeof v === "bigint" ? Number(v) : (v as number));
const nullIfAny = (f: (...x: Num[]) => Value) => (a: Value[]) => (a.some((x) => x === null) ? null : f(...a.map(num)));

export const FUNCTIONS: Record<string, Fn> = {
  abs: { arity: [1, 1], sql: (a) => `abs(${a[0]})`, js: nullIfAny((x) => Math.abs(x)) },
  sign: { arity: [1, 1], sql: (a) => `sign(${a[0]})`, js: nullIfAny((x) => Math.sign(x)) },
  ln: {
    arity: [1, 1],
    sql: (a) => `CASE WHEN ${a[0]} > 0 THEN ln(${a[0]}) END`,
    js: nullIfAny((x) => (x > 0 ? Math.log(x) : null)),
  },
  log1p: {
    arity: [1, 1],
    sql: (a) => `CASE WHEN ${a[0]} > -1 THEN ln(${a[0]} + 1) END`,
    js: nullIfAny((x) => (x > -1 ? Math.log(x + 1) : null)),
  },
  log10: {
    arity: [1, 1],
    sql: (a) => `CASE WHEN ${a[0]} > 0 THEN log10(${a[0]}) END`,
    js: nullIfAny((x) => (x > 0 ? Math.log10(x) : null)),
  },
  exp: { arity: [1, 1], sql: (a) => `exp(${a[0]})`, js: nullIfAny((x) => Math.exp(x)) },
  sqrt: {
    arity: [1, 1],
    sql: (a) => `CASE WHEN ${a[0]} >= 0 THEN sqrt(${a[0]}) END`,
    js: nullIfAny((x) => (x >= 0 ? Math.sqrt(x) : null)),
  },
  pow: { arity: [2, 2], sql: (a) => `pow(${a[0]}, ${a[1]})`, js: nullIfAny((x, y) => Math.pow(x, y)) },
  floor: { arity: [1, 1], sql: (a) => `floor(${a[0]})`, js: nullIfAny((x) => Math.floor(x)) },
  ceil: { arity: [1, 1], sql: (a) => `ceil(${a[0]})`, js: nullIfAny((x) => Math.ceil(x)) },
  sin: { arity: [1, 1], sql: (a) => `sin(${a[0]})`, js: nullIfAny((x) => Math.sin(x)) },
  cos: { arity: [1, 1], sql: (a) => `cos(${a[0]})`, js: nullIfAny((x) => Math.cos(x)) },
  epoch: {
    arity: [1, 1],
    sql: (a) =>
      `(CASE WHEN typeof(${a[0]}) LIKE 'TIMESTAMP%' OR typeof(${a[0]}) = 'DATE' THEN epoch_ms(TRY_CAST(${a[0]} AS TIMESTAMP)) / 1000.0 ELSE TRY_CAST(${a[0]} AS DOUBLE) END)`,
    js: (a) => (a[0] === null ? null : a[0] instanceof Date ? a[0].getTime() / 1000 : num(a[0])),
  },
  pi: { arity: [0, 0], sql: () => `pi()`, js: () => Math.PI },
  least: { arity: [1, 99], sql: (a) => `least(${a.join(", ")})`, js: (a) => pick(a, -1) },
  greatest: { arity: [1, 99], sql: (a) => `greatest(${a.join(", ")})`, js: (a) => pick(a, 1) },
  coalesce: { arity: [1, 99], sql: (a) => `coalesce(${a.join(", ")})`, js: (a) => a.find((x) => x !== null) ?? null },
  lower: {
    arity: [1, 1],
    sql: (a) => `lower(${a[0]})`,
    js: (a) => (a[0] === null ? null : String(a[0]).toLowerCase()),
  },
  upper: {
    arity: [1, 1],
    sql: (a) => `upper(${a[0]})`,
    js: (a) => (a[0] === null ? null : String(a[0]).toUpperCase()),
  },
  length: {
    arity: [1, 1],
    sql: (a) => `length(${a[0]})`,
    js: (a) => (a[0] === null ? null : Array.isArray(a[0]) ? a[0].length : String(a[0]).length),
  },
};

function pick(a: Value[], sign: -1 | 1): Value {
  let best: Value = null;
  for (const x of a) if (x !== null && (best === null || Math.sign(cmp(x, best)) === sign)) best = x;
  return best;
}

// ---------------------------------------------------------------- tokenizer and parser

type Tok = { t: "num" | "str" | "id" | "qid" | "op" | "kw"; v: string; pos: number };
const KEYWORDS = new Set([
  "AND",
  "OR",
  "NOT",
  "IS",
  "NULL",
  "TRUE",
  "FALSE",
  "IN",
  "CASE",
  "WHEN",
  "THEN",
  "ELSE",
  "END",
]);

function tokenize(src: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const rest = src.slice(i);
    let m: RegExpExecArray | null;
    if ((m = /^(\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)/.exec(rest))) {
      out.push({ t: "num", v: m[1], pos: i });
      i += m[1].length;
    } else if (c === "'") {
      let j = i + 1;
      let s = "";
      for (;;) {
        if (j >= src.length) throw new ValidationError(`expression "${src}": unterminated string at ${i}`);
        if (src[j] === "'") {
          if (src[j + 1] === "'") {
            s += "'";
            j += 2;
            continue;
          }
          break;
        }
        s += src[j++];
      }
      out.push({ t: "str", v: s, pos: i });
      i = j + 1;
    } else if (c === '"') {
      const j = src.indexOf('"', i + 1);
      if (j < 0) throw new ValidationError(`expression "${src}": unterminated quoted name at ${i}`);
      out.push({ t: "qid", v: src.slice(i + 1, j), pos: i });
      i = j + 1;
    } else if ((m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest))) {
      const up = m[0].toUpperCase();
      out.push(KEYWORDS.has(up) ? { t: "kw", v: up, pos: i } : { t: "id", v: m[0], pos: i });
      i += m[0].length;
    } else if ((m = /^(<=|>=|<>|!=|==|\|\||[-+*/%=<>(),])/.exec(rest))) {
      out.push({ t: "op", v: m[1], pos: i });
      i += m[1].length;
    } else {
      throw new ValidationError(`expression "${src}": unexpected character "${c}" at ${i}`);
    }
  }
  return out;
}

/** Parses an expression of the supported subset; throws a ValidationError that quotes it and says where. */
export function parseExpr(src: string): ExprNode {
  if (typeof src !== "string" || !src.trim())
    throw new ValidationError(`expression must be a non-empty string, got ${JSON.stringify(src)}`);
  const toks = tokenize(src);
  let p = 0;
  const peek = () => toks[p];
  const fail = (msg: string): never => {
    const at = toks[p] ? `at ${toks[p].pos} ("${toks[p].v}")` : "at the end";
    throw new ValidationError(`expression "${src}": ${msg} ${at}`);
  };
  const isOp = (v: string) => peek()?.t === "op" && peek().v === v;
  const isKw = (v: string) => peek()?.t === "kw" && peek().v === v;
  const expect = (t: "op" | "kw", v: string) => {
    if (peek()?.t === t && peek().v === v) p++;
    else fail(`expected "${v}"`);
  };

  const orE = (): ExprNode => {
    let a = andE();
    while (isKw("OR")) {
      p++;
      a = { k: "bin", op: "OR", a, b: andE() };
    }
    return a;
  };
  const andE = (): ExprNode => {
    let a = notE();
    while (isKw("AND")) {
      p++;
      a = { k: "bin", op: "AND", a, b: notE() };
    }
    return a;
  };
  const notE = (): ExprNode => {
    if (isKw("NOT")) {
      p++;
      return { k: "un", op: "NOT", a: notE() };
    }
    return cmpE();
  };
  const cmpE = (): ExprNode => {
    const a = addE();
    const t = peek();
    if (t?.t === "op" && ["=", "==", "!=", "<>", "<", "<=", ">", ">="].includes(t.v)) {
      p++;
      const op = t.v === "==" ? "=" : t.v === "!=" ? "<>" : t.v;
      return { k: "bin", op, a, b: addE() };
    }
    if (isKw("IS")) {
      p++;
      const not = isKw("NOT");
      if (not) p++;
      expect("kw", "NULL");
      return { k: "isnull", a, not };
    }
    const not = isKw("NOT") && toks[p + 1]?.t === "kw" && toks[p + 1].v === "IN";
    if (not) p++;
    if (isKw("IN")) {
      p++;
      expect("op", "(");
      const list = [orE()];
      while (isOp(",")) {
        p++;
        list.push(orE());
      }
      expect("op", ")");
      return { k: "in", a, list, not };
    }
    return a;
  };
  const addE = (): ExprNode => {
    let a = mulE();
    while (isOp("+") || isOp("-") || isOp("||")) {
      const op = toks[p++].v;
      a = { k: "bin", op, a, b: mulE() };
    }
    return a;
  };
  const mulE = (): ExprNode => {
    let a = unE();
    while (isOp("*") || isOp("/") || isOp("%")) {
      const op = toks[p++].v;
      a = { k: "bin", op, a, b: unE() };
    }
    return a;
  };
  const unE = (): ExprNode => {
    if (isOp("-")) {
      p++;
      return { k: "un", op: "-", a: unE() };
    }
    if (isOp("+")) {
      p++;
      return unE();
    }
    return primary();
  };
  const primary = (): ExprNode => {
    const t = peek();
    if (!t) return fail("expected a value");
    if (t.t === "num") {
      p++;
      return { k: "lit", v: Number(t.v) };
    }
    if (t.t === "str") {
      p++;
      return { k: "lit", v: t.v };
    }
    if (t.t === "qid") {
      p++;
      return { k: "col", name: t.v };
    }
    if (t.t === "kw") {
      if (t.v === "NULL" || t.v === "TRUE" || t.v === "FALSE") {
        p++;
        return { k: "lit", v: t.v === "NULL" ? null : t.v === "TRUE" };
      }
      if (t.v === "CASE") {
        p++;
        const whens: Array<[ExprNode, ExprNode]> = [];
        while (isKw("WHEN")) {
          p++;
          const c = orE();
          expect("kw", "THEN");
          whens.push([c, orE()]);
        }
        if (whens.length === 0) fail("CASE needs at least one WHEN");
        let els: ExprNode | null = null;
        if (isKw("ELSE")) {
          p++;
          els = orE();
        }
        expect("kw", "END");
        return { k: "case", whens, else: els };
      }
      return fail("unexpected keyword");
    }
    if (t.t === "id") {
      p++;
      if (isOp("(")) {
        const name = t.v.toLowerCase();
        const fn = FUNCTIONS[name];
        if (!fn) return fail(`unknown function "${t.v}" (supported: ${Object.keys(FUNCTIONS).join(", ")})`);
        p++;
        const args: ExprNode[] = [];
        if (!isOp(")")) {
          args.push(orE());
          while (isOp(",")) {
            p++;
            args.push(orE());
          }
        }
        expect("op", ")");
        if (args.length < fn.arity[0] || args.length > fn.arity[1])
          fail(`${name}() takes ${fn.arity[0]}..${fn.arity[1]} arguments, got ${args.length}`);
        return { k: "fn", name, args };
      }
      return { k: "col", name: t.v };
    }
    if (isOp("(")) {
      p++;
      const e = orE();
      expect("op", ")");
      return e;
    }
    return fail("expected a value");
  };

  const e = orE();
  if (p < toks.length) fail("unexpected token");
  return e;
}

/** Column names an expression reads. */
export function exprColumns(e: ExprNode, out = new Set<string>()): Set<string> {
  switch (e.k) {
    case "col":
      out.add(e.name);
      break;
    case "un":
    case "isnull":
      exprColumns(e.a, out);
      break;
    case "bin":
      exprColumns(e.a, out);
      exprColumns(e.b, out);
      break;
    case "in":
      exprColumns(e.a, out);
      e.list.forEach((x) => exprColumns(x, out));
      break;
    case "case":
      e.whens.forEach(([c, v]) => (exprColumns(c, out), exprColumns(v, out)));
      if (e.else) exprColumns(e.else, out);
      break;
    case "fn":
      e.args.forEach((x) => exprColumns(x, out));
      break;
  }
  return out;
}

/** DuckDB SQL for the expression; `col` maps a column name to its SQL (e.g. a qualified, quoted name). */
export function exprToSql(e: ExprNode, col: (name: string) => string = ident): string {
  const r = (x: ExprNode) => exprToSql(x, col);
  switch (e.k) {
    case "lit":
      return typeof e.v === "number" && Number.isInteger(e.v) ? String(e.v) : literal(e.v);
    case "col":
      return col(e.name);
    case "un":
      return e.op === "-" ? `(- ${r(e.a)})` : `(NOT ${r(e.a)})`;
    case "bin":
      // x % 0 is NULL in DuckDB already; "/" is floating-point division in DuckDB, as in JS.
      return `(${r(e.a)} ${e.op} ${r(e.b)})`;
    case "isnull":
      return `(${r(e.a)} IS ${e.not ? "NOT " : ""}NULL)`;
    case "in":
      return `(${r(e.a)} ${e.not ? "NOT " : ""}IN (${e.list.map(r).join(", ")}))`;
    case "case":
      return `(CASE ${e.whens.map(([c, v]) => `WHEN ${r(c)} THEN ${r(v)}`).join(" ")}${e.else ? ` ELSE ${r(e.else)}` : ""} END)`;
    case "fn":
      return FUNCTIONS[e.name].sql(e.args.map(r));
  }
}

function cmp(a: Value, b: Value): number {
  if ((typeof a === "number" || typeof a === "bigint") && (typeof b === "number" || typeof b === "bigint")) {
    return a < b ? -1 : a > b ? 1 : 0;
  }
  if (a instanceof Date && b instanceof Date) return a.getTime() - b.getTime();
  const sa = String(a);
  const sb = String(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

function truthy(v: Value): boolean | null {
  if (v === null) return null;
  return Boolean(v);
}

/** Evaluates the expression on one row, with DuckDB's NULL semantics. */
export function evalExpr(e: ExprNode, row: Row): Value {
  switch (e.k) {
    case "lit":
      return e.v;
    case "col": {
      const v = row[e.name];
      return v === undefined ? null : v;
    }
    case "un": {
      const a = evalExpr(e.a, row);
      if (a === null) return null;
      return e.op === "-" ? (typeof a === "bigint" ? -a : -num(a)) : !a;
    }
    case "isnull": {
      const isNull = evalExpr(e.a, row) === null;
      return e.not ? !isNull : isNull;
    }
    case "in": {
      const a = evalExpr(e.a, row);
      if (a === null) return null;
      let sawNull = false;
      for (const x of e.list) {
        const v = evalExpr(x, row);
        if (v === null) sawNull = true;
        else if (cmp(a, v) === 0) return !e.not;
      }
      return sawNull ? null : e.not;
    }
    case "case": {
      for (const [c, v] of e.whens) if (truthy(evalExpr(c, row)) === true) return evalExpr(v, row);
      return e.else ? evalExpr(e.else, row) : null;
    }
    case "fn":
      return FUNCTIONS[e.name].js(e.args.map((x) => evalExpr(x, row)));
    case "bin": {
      if (e.op === "AND" || e.op === "OR") {
        const a = truthy(evalExpr(e.a, row));
        const b = truthy(evalExpr(e.b, row));
        if (e.op === "AND") return a === false || b === false ? false : a === null || b === null ? null : true;
        return a === true || b === true ? true : a === null || b === null ? null : false;
      }
      const a = evalExpr(e.a, row);
      const b = evalExpr(e.b, row);
      if (a === null || b === null) return null;
      switch (e.op) {
        case "=":
          return cmp(a, b) === 0;
        case "<>":
          return cmp(a, b) !== 0;
        case "<":
          return cmp(a, b) < 0;
        case "<=":
          return cmp(a, b) <= 0;
        case ">":
          return cmp(a, b) > 0;
        case ">=":
          return cmp(a, b) >= 0;
        case "||":
          return String(a) + String(b);
        case "+":
          return num(a) + num(b);
        case "-":
          return num(a) - num(b);
        case "*":
          return num(a) * num(b);
        case "/":
          return num(a) / num(b);
        case "%":
          return num(b) === 0 ? null : num(a) % num(b);
      }
      throw new ValidationError(`expression: unknown operator ${e.op}`);
    }
  }
}
