// Times @ruvector/attention's multi-head attention on inputs written by benches/attention.rs, so
// both sides attend from the same query to the same keys and values. Its index.d.ts declares a
// function multiHeadAttention(query, keys, values, {dim, numHeads}), but the native module of
// 2.2.2 exports no such function; it exports the class used here:
// new MultiHeadAttention(dim, numHeads).compute(query, keys[], values[]) -> Float32Array(dim),
// softmax(q_h·k_h / sqrt(d_h)) v_h per head, concatenated, no projections.
//
//   node benches/ruvector_attention.mjs MODULE_DIR INPUT.bin N D HEADS BUDGET_MS MAX_REPS
//
// INPUT.bin holds little-endian f32: the query (D), the keys (N x D), the values (N x D).
// Prints one JSON line: {n, reps, meanUs, minUs, out}. The keys and values are split into
// Float32Arrays and the layer is built before the clock starts; the timed call is compute alone.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const [moduleDir, file, nArg, dArg, headsArg, budgetArg, maxRepsArg] = process.argv.slice(2);
const require = createRequire(path.join(moduleDir, "package.json"));
const { MultiHeadAttention } = require("@ruvector/attention");
const [n, d, heads, budgetMs, maxReps] = [nArg, dArg, headsArg, budgetArg, maxRepsArg].map(Number);

const buf = readFileSync(file);
const all = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
const query = all.slice(0, d);
const keys = [], values = [];
for (let j = 0; j < n; j++) {
  keys.push(all.slice(d + j * d, d + (j + 1) * d));
  values.push(all.slice(d + n * d + j * d, d + n * d + (j + 1) * d));
}
const layer = new MultiHeadAttention(d, heads);

let out = layer.compute(query, keys, values); // warm-up, and the result to compare
const first = performance.now();
let reps = 0, min = Infinity;
const start = performance.now();
while (reps < maxReps && (reps === 0 || performance.now() - start < budgetMs)) {
  const t = performance.now();
  out = layer.compute(query, keys, values);
  min = Math.min(min, performance.now() - t);
  reps++;
}
const total = performance.now() - first;
console.log(JSON.stringify({ n, reps, meanUs: (total / reps) * 1000, minUs: min * 1000, out: Array.from(out) }));
