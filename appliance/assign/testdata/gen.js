// gen.js writes sdk.json: assignments, hashes and condition results computed
// by the GrowthBook JavaScript SDK itself, which the Go tests must
// reproduce. Regenerate with (needs Node.js 18+ and network once):
//
//	npm install --prefix /tmp/gbsdk @growthbook/growthbook@1.8.0
//	NODE_PATH=/tmp/gbsdk/node_modules node appliance/assign/testdata/gen.js > appliance/assign/testdata/sdk.json
//
// The random inputs come from a fixed seed, so the output only changes
// when the SDK does.
"use strict";
process.env.NODE_ENV = "production"; // silence the SDK's warnings about bad weights
const path = require("path");
const sdk = require("@growthbook/growthbook");
// hash, getBucketRanges and inNamespace are not exported by the package.
const util = require(path.join(path.dirname(require.resolve("@growthbook/growthbook")), "util.js"));
const version = require("@growthbook/growthbook/package.json").version;

// mulberry32: a small seeded PRNG, so that runs are reproducible.
let state = 20261127;
function rand() {
  state = (state + 0x6d2b79f5) | 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (xs) => xs[Math.floor(rand() * xs.length)];
const int = (n) => Math.floor(rand() * n);

// Characters that tell UTF-16, UTF-8 and code point hashing apart, and the
// orderings where UTF-16 differs from code point order (U+E000.., emoji).
const chars = ["a", "b", "z", "A", "Z", "0", "7", "-", "_", " ", ".", "é", "ß", "ÿ", "Ā", "日", "本", "\uE000", "\uFFFD", "\uFFFF", "😀", "𝄞", "\u0000"];
function str(max) {
  let s = "";
  const n = int(max + 1);
  for (let i = 0; i < n; i++) s += pick(chars);
  return s;
}
function unitID() {
  return rand() < 0.5 ? String(int(100000)) : str(24);
}

const out = { sdkVersion: version, hash: [], inNamespace: [], bucketRanges: [], conditions: [], run: [], flags: [] };

for (let i = 0; i < 300; i++) {
  const seed = rand() < 0.2 ? "" : str(12);
  const value = unitID();
  const v = pick([1, 2]);
  out.hash.push([seed, value, v, util.hash(seed, value, v)]);
}

for (let i = 0; i < 200; i++) {
  const a = Math.round(rand() * 1000) / 1000;
  const b = Math.round(rand() * 1000) / 1000;
  const ns = [str(8), Math.min(a, b), Math.max(a, b)];
  const unit = unitID();
  out.inNamespace.push([unit, ns, util.inNamespace(unit, ns)]);
}

function weights(n) {
  if (rand() < 0.1) return null;
  const w = [];
  for (let i = 0; i < n; i++) w.push(rand());
  if (rand() < 0.1) return w; // usually not summing to 1: equal weights
  const sum = w.reduce((a, b) => a + b, 0);
  return w.map((x) => Math.round((x / sum) * 10000) / 10000);
}
function coverage() {
  return pick([0, 1, 1, 0.5, -0.2, 1.5, Math.round(rand() * 100) / 100]);
}

for (let i = 0; i < 100; i++) {
  const n = 1 + int(5);
  const w = weights(n);
  const c = coverage();
  out.bucketRanges.push([n, c, w, util.getBucketRanges(n, c, w || undefined)]);
}

// Conditions, over the operators mlnode exposes.
const ops = { eq: "$eq", neq: "$ne", in: "$in", nin: "$nin", lt: "$lt", lte: "$lte", gt: "$gt", gte: "$gte", regex: "$regex" };
const scalars = [0, 1, 2, -3, 8, 10, 30, 60, 0.1, 2.5, 1e21, 1.5e-7, 123456789012, "", "8", " 12 ", "0x1A", "1e3", "10", "5", "abc", "Abc", "alphabet", "zebra", "é", "日本", "\uE000", "😀", true, false, null];
const patterns = ["^a", "c$", "(Mobile|Tablet)", "[0-9]+", "^n", "ul", "^1", "e\\+21", "e-7", "é", "😀", "^$", "true", "1,2", "^-?\\d+(\\.\\d+)?$"];
function attrValue() {
  const r = rand();
  if (r < 0.7) return pick(scalars);
  if (r < 0.9) return [pick(scalars), pick(scalars)].filter((x) => x !== null);
  return { x: pick(scalars) };
}
function ruleValue(op) {
  switch (op) {
    case "in":
    case "nin":
      return [pick(scalars), pick(scalars), pick(scalars)];
    case "regex":
      return pick(patterns);
    case "lt":
    case "lte":
    case "gt":
    case "gte":
      return pick(scalars.filter((x) => typeof x === "number" || typeof x === "string"));
  }
  return pick(scalars);
}
const attrNames = ["age", "country", "tags", "n", "s", "user.plan"];
function attributes() {
  const attrs = {};
  for (const name of attrNames) {
    if (rand() < 0.2) continue; // missing
    if (name === "user.plan") attrs.user = rand() < 0.8 ? { plan: attrValue() } : attrValue();
    else attrs[name] = attrValue();
  }
  return attrs;
}
function rule() {
  const op = pick(Object.keys(ops));
  return { attribute: pick(attrNames), op, value: ruleValue(op) };
}
function condition(rules) {
  return { $and: rules.map((r) => ({ [r.attribute]: { [ops[r.op]]: r.value } })) };
}

for (let i = 0; i < 1000; i++) {
  const r = rule();
  const attrs = attributes();
  out.conditions.push([r, attrs, sdk.evalCondition(attrs, condition([r]))]);
}

// Experiments run through GrowthBook.run, as an app would.
for (let i = 0; i < 400; i++) {
  const n = 2 + int(3);
  const exp = { key: "exp-" + str(6), seed: rand() < 0.5 ? "" : str(10), hashVersion: pick([1, 2]), weights: weights(n) || [], coverage: coverage() };
  if (rand() < 0.3) {
    const a = Math.round(rand() * 100) / 100;
    exp.namespace = { id: str(6) || "ns", start: a, end: Math.min(1, a + Math.round(rand() * 100) / 100) };
  }
  exp.conditions = rand() < 0.3 ? [rule(), rule()].slice(0, 1 + int(2)) : [];
  const unit = rand() < 0.05 ? "" : unitID();
  exp.force = rand() < 0.1 ? { [unit || "x"]: int(n) } : {};
  const attrs = attributes();
  const js = { key: exp.key, variations: [...Array(n).keys()], hashVersion: exp.hashVersion, coverage: exp.coverage };
  if (exp.seed) js.seed = exp.seed;
  if (exp.weights.length) js.weights = exp.weights;
  if (exp.namespace) js.namespace = [exp.namespace.id, exp.namespace.start, exp.namespace.end];
  if (exp.conditions.length) js.condition = condition(exp.conditions);
  const forced = unit in exp.force ? { [exp.key]: exp.force[unit] } : {};
  const gb = new sdk.GrowthBook({ attributes: { ...attrs, id: unit }, forcedVariations: forced });
  const res = gb.run(js);
  if (!exp.weights.length) exp.weights = new Array(n).fill(1 / n); // mlnode counts variations by weights
  out.run.push([exp, unit, attrs, res.variationId, res.inExperiment, res.hashUsed ? res.bucket : null]);
  gb.destroy();
}

// Flags: force rules, then one experiment rule, default value variant 0.
for (let i = 0; i < 300; i++) {
  const n = 1 + int(4);
  const flag = { key: "flag-" + str(6), variants: n, seed: rand() < 0.5 ? "" : str(10), hashVersion: pick([1, 2]), weights: weights(n), coverage: coverage(), rules: [] };
  if (flag.weights && flag.weights.reduce((a, b) => a + b, 0) > 1.01) flag.weights = null;
  for (let k = int(3); k > 0; k--) flag.rules.push({ conditions: [rule(), rule()].slice(0, int(3)), variant: int(n) });
  const unit = rand() < 0.05 ? "" : unitID();
  const attrs = attributes();
  const rules = flag.rules.map((r) => (r.conditions.length ? { condition: condition(r.conditions), force: r.variant } : { force: r.variant }));
  const split = { key: flag.key, variations: [...Array(n).keys()], hashVersion: flag.hashVersion, coverage: flag.coverage };
  if (flag.seed) split.seed = flag.seed;
  if (flag.weights) split.weights = flag.weights;
  rules.push(split);
  const gb = new sdk.GrowthBook({ attributes: { ...attrs, id: unit }, features: { [flag.key]: { defaultValue: 0, rules } } });
  const res = gb.evalFeature(flag.key);
  out.flags.push([flag, unit, attrs, res.value, res.source]);
  gb.destroy();
}

process.stdout.write(JSON.stringify(out, null, 0).replace(/\],\[/g, "],\n[") + "\n");
