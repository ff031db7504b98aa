// The shapes of bench/promise.c with Node.js's native Promise, printed the
// same way: "shape<TAB>n<TAB>run<TAB>value<TAB>unit". Run with --expose-gc.
// Each shape runs twice, "cold" then "warm", as in promise.c.
'use strict';
const n = Number(process.argv[2] || 1000000);
const now = () => Number(process.hrtime.bigint()) / 1e9;
let runName = 'cold';
const report = (shape, count, secs) =>
  console.log(`${shape}\t${count}\t${runName}\t${(count / secs).toFixed(0)}\tper_s`);
const pass = (v) => v;

async function chain(count, shape) {
  const t0 = now();
  let resolve;
  let p = new Promise((r) => { resolve = r; });
  const head = p;
  for (let i = 0; i < count; i++) p = p.then(pass);
  resolve(0);
  await p;
  report(shape, count, now() - t0);
  void head;
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
  report('many_promises', count, now() - t0);
  if (calls !== count) throw new Error('lost callbacks');
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
  report('nested_promises', count, now() - t0);
}

function bytes(count) {
  global.gc();
  const before = process.memoryUsage().heapUsed;
  const keep = new Array(count);
  const noop = () => {};
  const before2 = process.memoryUsage().heapUsed;
  for (let i = 0; i < count; i++) {
    const p = new Promise(noop);
    p.then(pass, pass);
    keep[i] = p;
  }
  global.gc();
  const after = process.memoryUsage().heapUsed;
  // The array of references is the benchmark's, not the promises'.
  const arrayBytes = before2 - before;
  console.log(`bytes_per_pending\t${count}\tcold\t${((after - before2) / count).toFixed(1)}\tbytes`);
  void arrayBytes;
  return keep.length;
}

(async () => {
  for (let run = 0; run < 2; run++) {
    runName = run === 0 ? 'cold' : 'warm';
    await chain(n / 10, 'chain_small');
    await chain(n, 'chain');
    await chain(n * 4, 'chain_4x');
    await many(n);
    await nest(n);
  }
  bytes(n);
})();
