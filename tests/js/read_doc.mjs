// Loads a Linli document (automerge `save()` bytes, as the hub exports it)
// with automerge's JavaScript implementation and prints what it reads as
// JSON on stdout:
//   ledger: {kind, doc_id, schema, sales: {sale_id: {ticket_no, created_at,
//            (each sale one JSON string in the document)
//            cashier, total_fen, member, lines: [{sku, qty, total_fen}],
//            payments: [{method, amount_fen}]}}}
//   stock:  {kind, doc_id, schema, levels: {sku: {on_hand, reserved}}}
// Values are checked as they are read: a field of the wrong type (a string
// where an integer belongs, a fraction, a missing key) exits non-zero with
// the path of the field on stderr, so the Rust test sees a failure rather
// than a default.
//
// Usage: node read_doc.mjs FILE

import { readFileSync } from "node:fs";
import * as Automerge from "@automerge/automerge";

function fail(msg) {
  process.stderr.write(`read_doc: ${msg}\n`);
  process.exit(1);
}

function str(obj, key, path) {
  const v = obj?.[key];
  if (Automerge.isImmutableString(v)) return v.toString();
  if (typeof v === "string") return v;
  fail(`${path}.${key}: want a string, got ${describe(v)}`);
}

function int(obj, key, path) {
  let v = obj?.[key];
  if (Automerge.isCounter(v)) v = v.value;
  if (typeof v === "bigint") v = Number(v);
  if (typeof v === "number" && Number.isSafeInteger(v)) return v;
  fail(`${path}.${key}: want an integer, got ${describe(v)}`);
}

function bool(obj, key, path) {
  const v = obj?.[key];
  if (typeof v === "boolean") return v;
  fail(`${path}.${key}: want a boolean, got ${describe(v)}`);
}

function map(obj, key, path) {
  const v = obj?.[key];
  if (v !== null && typeof v === "object" && !Array.isArray(v)) return v;
  fail(`${path}.${key}: want a map, got ${describe(v)}`);
}

function list(obj, key, path) {
  const v = obj?.[key];
  if (Array.isArray(v)) return v;
  fail(`${path}.${key}: want a list, got ${describe(v)}`);
}

function describe(v) {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  return `${typeof v} ${JSON.stringify(v)}`;
}

// An entry is one JSON string (how the ledger writes entries now) or a map
// of fields (entries written before).
function entry(raw, path) {
  if (Automerge.isImmutableString(raw) || typeof raw === "string") {
    try {
      return JSON.parse(raw.toString());
    } catch (e) {
      fail(`${path}: not JSON: ${e.message}`);
    }
  }
  if (raw !== null && typeof raw === "object" && !Array.isArray(raw)) return raw;
  fail(`${path}: want a JSON string or a map, got ${describe(raw)}`);
}

function readLedger(doc) {
  const sales = {};
  // a part may hold no sale (the day's goods-in alone fills a part)
  const all = doc?.sales === undefined ? {} : map(doc, "sales", "");
  for (const [id, raw] of Object.entries(all)) {
    const p = `sales.${id}`;
    const s = entry(raw, p);
    sales[id] = {
      ticket_no: str(s, "ticket_no", p),
      created_at: str(s, "created_at", p),
      cashier: str(s, "cashier", p),
      total_fen: int(s, "total_fen", p),
      member: bool(s, "member", p),
      lines: list(s, "lines", p).map((l, i) => ({
        sku: str(l, "sku", `${p}.lines[${i}]`),
        qty: int(l, "qty", `${p}.lines[${i}]`),
        total_fen: int(l, "total_fen", `${p}.lines[${i}]`),
      })),
      payments: list(s, "payments", p).map((x, i) => ({
        method: str(x, "method", `${p}.payments[${i}]`),
        amount_fen: int(x, "amount_fen", `${p}.payments[${i}]`),
      })),
    };
  }
  return { sales };
}

// A level is one JSON string `[on_hand, reserved]` (how stores write levels
// now) or a map {on_hand, reserved} (levels written before).
function readStock(doc) {
  const levels = {};
  for (const [sku, raw] of Object.entries(map(doc, "levels", ""))) {
    const p = `levels.${sku}`;
    const l = Automerge.isImmutableString(raw) || typeof raw === "string" ? entry(raw, p) : raw;
    if (Array.isArray(l)) {
      if (l.length !== 2 || !l.every(Number.isInteger)) {
        fail(`${p}: want [on_hand, reserved], got ${describe(l)}`);
      }
      levels[sku] = { on_hand: l[0], reserved: l[1] };
      continue;
    }
    levels[sku] = {
      on_hand: int(l, "on_hand", p),
      reserved: int(l, "reserved", p),
    };
  }
  return { levels };
}

const file = process.argv[2];
if (!file) fail("usage: node read_doc.mjs FILE");

let doc;
try {
  doc = Automerge.load(new Uint8Array(readFileSync(file)));
} catch (e) {
  fail(`Automerge.load(${file}) failed: ${e?.stack ?? e}`);
}

const kind = str(doc, "kind", "");
const head = {
  kind,
  doc_id: str(doc, "doc_id", ""),
  schema: int(doc, "schema", ""),
  heads: Automerge.getHeads(doc).length,
};
let body;
if (kind === "ledger") body = readLedger(doc);
else if (kind === "stock") body = readStock(doc);
else fail(`unknown document kind ${JSON.stringify(kind)}`);

process.stdout.write(JSON.stringify({ ...head, ...body }) + "\n");
