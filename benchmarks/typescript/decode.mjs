// Decode throughput of the TypeScript client's frame decoder (the strict PROTOCOL.md §3
// decoder plus the frame shape checks: `decodeServerFrame` in bindings/typescript) against
// cbor-x's bare `decode` of the same frame bodies, measured side by side in one run.
// The figure that matters is the ratio (goal: >= 0.7x). A report, not a test.
//
//   (cd bindings/typescript && npm ci && npm run build)
//   node benchmarks/typescript/decode.mjs [--rounds 7] [--frames 20000] [--seed 1]
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    rounds: { type: "string", default: "7" },
    frames: { type: "string", default: "20000" },
    seed: { type: "string", default: "1" },
  },
});
const ROUNDS = Number(args.rounds);
const FRAMES = Number(args.frames);

const pkg = new URL("../../bindings/typescript/", import.meta.url);
const roomwire = await import(new URL("dist/index.js", pkg).href);
// cbor-x as Node loads it (with its native string extraction, cbor-extract, when installed),
// and its plain-JavaScript decoder, the one a browser runs.
const cborx = await import(pathToFileURL(createRequire(new URL("package.json", pkg)).resolve("cbor-x")).href);
const cborxJs = await import(new URL("node_modules/cbor-x/decode.js", pkg).href);

// A seeded mix of what a client reads most: deliveries (small chat messages, some with an
// attachment, some with larger structured payloads), presence diffs, acks and pings.
let state = Number(args.seed) >>> 0 || 1;
const random = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const pick = (items) => items[Math.floor(random() * items.length)];
const word = () => Array.from({ length: 3 + Math.floor(random() * 8) }, () => pick("abcdefghijklmnopqrstuvwxyz")).join("");
const person = (i) => ({ id: `p${i}`, name: word(), role: "user", attributes: { status: word() } });

function makeFrame(i) {
  const roll = random();
  if (roll < 0.45) {
    return { t: "msg", id: `m${i}`, seq: i, ts: 1700000000 + i / 7, from: `p${i % 50}`, type: "chat", message: { text: `${word()} ${word()} ${word()}` }, bc: random() < 0.5 };
  }
  if (roll < 0.6) {
    const att = new Uint8Array(256 + Math.floor(random() * 2048)).map(() => random() * 256);
    return { t: "msg", id: `m${i}`, seq: i, ts: 1700000000.25, from: "p1", type: "file", message: { name: `${word()}.bin` }, bc: false, att };
  }
  if (roll < 0.7) {
    const rows = Array.from({ length: 20 }, (_, r) => ({ x: r, y: random(), label: word(), tags: [word(), word()] }));
    return { t: "msg", id: `m${i}`, seq: i, ts: 1700000000.5, from: "p2", type: "table", message: { rows, total: 20 }, bc: true };
  }
  if (roll < 0.8) return { t: random() < 0.5 ? "joined" : "updated", p: person(i), seq: i };
  if (roll < 0.85) return { t: "left", id: `p${i}`, seq: i };
  if (roll < 0.97) return { t: "ack", rid: i, id: `m${i}` };
  return { t: "ping" };
}

const bodies = Array.from({ length: FRAMES }, (_, i) => roomwire.encodePayload(makeFrame(i + 1)));
const bytes = bodies.reduce((total, body) => total + body.length, 0);

// Both decoders must read every body the same way before anything is timed.
for (const body of bodies) {
  const ours = roomwire.decodeServerFrame(body);
  const theirs = cborx.decode(body);
  if (ours.t !== theirs.t || Object.keys(ours).length !== Object.keys(theirs).length) {
    throw new Error(`the decoders disagree on a ${ours.t} frame`);
  }
}

const passes = {
  "roomwire decodeServerFrame (strict + shapes)": (body) => roomwire.decodeServerFrame(body),
  "cbor-x decode (bare)": (body) => cborx.decode(body),
  "cbor-x decode (bare, JavaScript only)": (body) => cborxJs.decode(body),
};

function timePass(decode) {
  let sink = 0;
  const start = performance.now();
  for (const body of bodies) sink += decode(body).t.length;
  const seconds = (performance.now() - start) / 1000;
  if (sink === 0) throw new Error("nothing decoded");
  return seconds;
}

const best = Object.fromEntries(Object.keys(passes).map((name) => [name, Infinity]));
for (const decode of Object.values(passes)) timePass(decode); // warm-up, untimed
for (let round = 0; round < ROUNDS; round++) {
  // Alternate the order so neither pass always runs on a warmer cache.
  const names = Object.keys(passes);
  if (round % 2) names.reverse();
  for (const name of names) best[name] = Math.min(best[name], timePass(passes[name]));
}

console.log(`cbor-x native acceleration: ${cborx.isNativeAccelerationEnabled ? "on" : "off"}`);
console.log(`${FRAMES} frame bodies, ${(bytes / 1024 / 1024).toFixed(1)} MiB, best of ${ROUNDS} rounds, node ${process.version}`);
for (const [name, seconds] of Object.entries(best)) {
  console.log(`  ${name.padEnd(46)} ${(FRAMES / seconds / 1000).toFixed(0).padStart(6)} k frames/s  ${(bytes / seconds / 1024 / 1024).toFixed(0).padStart(5)} MiB/s`);
}
const [ours, native, js] = Object.values(best);
console.log(`ratio (roomwire / cbor-x throughput): ${(native / ours).toFixed(2)}x  (goal >= 0.70x)`);
console.log(`ratio (roomwire / cbor-x JavaScript-only throughput): ${(js / ours).toFixed(2)}x`);
