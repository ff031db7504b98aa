// The shapes of bench/bench_promise.c with Node.js's native Promise, one shape
// per process, printed the same way: "shape<TAB>n<TAB>run<TAB>value<TAB>unit".
//   node --expose-gc promise.js SHAPE [N [cold|warm]]
// "warm" runs the shape once untimed, then times a second run. The memory
// shapes count what n pending promises add to the V8 heap (after a full
// GC) and to the resident set.
'use strict';
const shape = process.argv[2] || 'chain';
const n = Number(process.argv[3] || 1000000);
const runName = process.argv[4] || 'cold';
const now = () => Number(process.hrtime.bigint()) / 1e9;
const pass = (v) => v;

async function chain(count) {
  const t0 = now();
  let resolve;
  let p = new Promise((r) => { resolve = r; });
  const head = p;
  for (let i = 0; i < count; i++) p = p.then(pass);
  resolve(0);
  await p;
  void head;
  return now() - t0;
}

async function many(count) {
  let calls = 0;
  const inc = () => { calls++; };
  const t0 = now();
  let last;
  for (let i = 0; i < count; i++) {
    let resolve;
    const p = new Promise((r) => { resolve = r; });
    last = p.then(inc);
    resolve(0);
  }
  await last;
  if (calls !== count) throw new Error('lost callbacks');
  return now() - t0;
}

async function nest(count) {
  const t0 = now();
  const resolvers = new Array(count);
  const ps = new Array(count);
  for (let i = 0; i < count; i++) {
    ps[i] = new Promise((r) => { resolvers[i] = r; });
  }
  // p[i] resolves with p[i+1]: JS adopts its state, as vow_wait does.
  for (let i = 0; i + 1 < count; i++) resolvers[i](ps[i + 1]);
  const done = ps[0].then(pass);
  resolvers[count - 1](1);
  await done;
  return now() - t0;
}

// The pool's pattern: promises given a callback while their work is
// outstanding, then all resolved.
async function pendingThenResolve(count) {
  let calls = 0;
  const inc = () => { calls++; };
  const t0 = now();
  const resolvers = new Array(count);
  let last;
  for (let i = 0; i < count; i++) {
    last = new Promise((r) => { resolvers[i] = r; }).then(inc);
  }
  for (let i = 0; i < count; i++) resolvers[i](0);
  await last;
  if (calls !== count) throw new Error('lost callbacks');
  return now() - t0;
}

const shapes = {
  chain_small: [() => chain(n / 10), n / 10],
  chain: [() => chain(n), n],
  chain_4x: [() => chain(n * 4), n * 4],
  many_promises: [() => many(n), n],
  nested_promises: [() => nest(n), n],
  pending_then_resolve: [() => pendingThenResolve(n), n],
};

function bytes(pair) {
  const keep = new Array(n).fill(null); // the benchmark's, made first
  const noop = () => {};
  global.gc();
  const heap0 = process.memoryUsage().heapUsed;
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < n; i++) {
    const p = new Promise(noop);
    if (pair) p.then(pass, pass);
    keep[i] = p;
  }
  global.gc();
  const heap1 = process.memoryUsage().heapUsed;
  const rss1 = process.memoryUsage().rss;
  console.log(`${shape}_heap\t${n}\tcold\t${((heap1 - heap0) / n).toFixed(1)}\tbytes`);
  console.log(`${shape}_rss\t${n}\tcold\t${((rss1 - rss0) / n).toFixed(1)}\tbytes`);
  return keep.length;
}

(async () => {
  if (shape === 'bytes_bare' || shape === 'bytes_pair') {
    bytes(shape === 'bytes_pair');
    return;
  }
  const [run, count] = shapes[shape];
  if (runName === 'warm') await run();
  const secs = await run();
  console.log(`${shape}\t${count}\t${runName}\t${(count / secs).toFixed(0)}\tper_s`);
})();
