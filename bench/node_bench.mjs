// node_bench.mjs - the suite's workloads in JavaScript, for Node.js 20, Bun and Deno.
//
//   node --expose-gc node_bench.mjs <workload> <n> [window_ms] [url]
//   bun node_bench.mjs <workload> <n> [window_ms] [url]
//   deno run --allow-all --v8-flags=--expose-gc node_bench.mjs <workload> <n> [window_ms] [url]
//
// The same programs as vow_bench.c (read them side by side), one workload per
// process, a warm-up pass of a tenth of the size first, and one RESULT line
// on stdout (see bench_common.h). --expose-gc is used only by the *_heap and
// suspended workloads, which collect garbage before reading heapUsed (Bun has
// Bun.gc instead); the timed workloads never call gc(). The same file runs
// unchanged in the three runtimes: only node: modules and what Bun and Deno
// also provide (process, performance, /proc); `serve_native` is the HTTP
// server through the runtime's own API (Bun.serve, Deno.serve) instead of
// node:http.
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';

const [workload, nArg, windowArg, URL_ARG] = process.argv.slice(2);
const N = Number(nArg);
const WINDOW = Number(windowArg ?? 1000);
if (!workload || !(N >= 1 || workload.startsWith('serve'))) {
  console.error('usage: node node_bench.mjs <workload> <n> [window_ms]');
  process.exit(64);
}

function statusKb(field) {
  const m = readFileSync('/proc/self/status', 'utf8').match(new RegExp(`^${field}:\\s+(\\d+)`, 'm'));
  return m ? Number(m[1]) : -1;
}
const RSS_BASE_KB = statusKb('VmRSS');

const now = () => performance.now(); // ms, sub-microsecond resolution
const warm = (n) => (n / 10 < 100 ? Math.min(n, 100) : Math.floor(n / 10));
const die = (msg) => {
  console.error(`bench: ${msg}`);
  process.exit(2);
};
const collect = globalThis.gc ?? (globalThis.Bun ? () => globalThis.Bun.gc(true) : null);
function heapUsed() {
  if (!collect) die('no gc(): run node and deno with --expose-gc');
  collect();
  collect();
  return process.memoryUsage().heapUsed;
}
// CPU time of the process (all threads: the GC's helpers count) per op.
async function withCpu(n, pass) {
  const c0 = process.cpuUsage();
  const r = await pass();
  const c = process.cpuUsage(c0);
  return { r, cpu_ns: (c.user + c.system) * 1e3 / n };
}
function report(kv) {
  const parts = Object.entries(kv).map(([k, v]) => `${k}=${Number(v).toPrecision(6)}`);
  parts.push(`rss_base_kb=${RSS_BASE_KB}`, `rss_hwm_kb=${statusKb('VmHWM')}`);
  process.stdout.write(`RESULT ${parts.join(' ')}\n`);
}

// 1. microtask chain: each microtask queues the next.
function microtaskPass(n) {
  return new Promise((done) => {
    let left = n;
    const t0 = now();
    function hop() {
      if (--left > 0) queueMicrotask(hop);
      else done((now() - t0) * 1e6 / n);
    }
    queueMicrotask(hop);
  });
}

// 2. then-chain: n .then steps built on a resolved promise, then run.
async function thenPass(n, measureHeap) {
  const h0 = measureHeap ? heapUsed() : 0;
  const t0 = now();
  let p = Promise.resolve(0);
  for (let i = 0; i < n; i++) p = p.then((v) => v + 1);
  const t1 = now();
  const heapB = measureHeap ? (heapUsed() - h0) / n : 0;
  const t2 = now();
  const v = await p;
  const t3 = now();
  if (v !== n) die(`then-chain: got ${v}`);
  return { ns: ((t1 - t0) + (t3 - t2)) * 1e6 / n, heapB };
}

// 3. fan-out: n pending promises, gathered by Promise.all, then resolved.
async function fanoutPass(n, measureHeap) {
  const h0 = measureHeap ? heapUsed() : 0;
  const t0 = now();
  const resolvers = new Array(n);
  const ps = new Array(n);
  for (let i = 0; i < n; i++) ps[i] = new Promise((resolve) => { resolvers[i] = resolve; });
  const t1 = now();
  const pendingB = measureHeap ? (heapUsed() - h0) / n : 0;
  const t2 = now();
  const all = Promise.all(ps);
  const t3 = now();
  const allB = measureHeap ? (heapUsed() - h0) / n : 0;
  const t4 = now();
  for (let i = 0; i < n; i++) resolvers[i](i);
  const values = await all;
  const t5 = now();
  if (values.length !== n || values[n - 1] !== n - 1) die('fan-out: wrong array');
  return { ns: ((t1 - t0) + (t3 - t2) + (t5 - t4)) * 1e6 / n, pendingB, allB };
}

// 4a. await loop: n awaits of one resolved promise in one async function.
async function awaitBody(n) {
  const p = Promise.resolve(1);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += await p;
  return sum;
}
async function awaitPass(n) {
  const t0 = now();
  const s = await awaitBody(n);
  const t1 = now();
  if (s !== n) die('await loop: wrong sum');
  return (t1 - t0) * 1e6 / n;
}

// 4a'. await interleaved: two async functions, n/2 awaits each, in turn.
async function interleavedPass(n) {
  const half = Math.floor(n / 2);
  const t0 = now();
  const [a, b] = await Promise.all([awaitBody(half), awaitBody(half)]);
  const t1 = now();
  if (a !== half || b !== half) die('interleaved awaits: wrong sum');
  return (t1 - t0) * 1e6 / (2 * half);
}

// 4b. async call: n sequential calls of an async function that awaits once.
async function awaitsOnce() {
  await undefined;
  return 1;
}
async function asyncCallPass(n) {
  const t0 = now();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += await awaitsOnce();
  const t1 = now();
  if (sum !== n) die('async calls: wrong sum');
  return (t1 - t0) * 1e6 / n;
}

// 11. structured: Node has no task groups: the nearest is the same calls
// gathered by Promise.all, in batches of 50 (see vow_bench.c). context: AsyncLocalStorage's
// run, with getStore before and after an await.
async function groupSpawnPass(n) {
  const t0 = now();
  let sum = 0;
  for (let done = 0; done < n; done += 50) {
    const batch = Math.min(50, n - done);
    const ps = [];
    for (let i = 0; i < batch; i++) ps.push(awaitsOnce());
    for (const v of await Promise.all(ps)) sum += v;
  }
  const t1 = now();
  if (sum !== n) die('group spawn: wrong sum');
  return (t1 - t0) * 1e6 / n;
}
const als = new AsyncLocalStorage();
async function readsContext() {
  const a = als.getStore();
  await Promise.resolve();
  return a === als.getStore() ? 1 : 0;
}
async function contextPass(n) {
  const t0 = now();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += await als.run(i, readsContext);
  const t1 = now();
  if (sum !== n) die('context: wrong sum');
  return (t1 - t0) * 1e6 / n;
}

// 5. Promise.race against a 5 s timeout, cleared when the work wins.
async function racePass(n) {
  const t0 = now();
  let sum = 0;
  for (let i = 0; i < n; i++) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('Timeout!')), 5000);
    });
    sum += await Promise.race([Promise.resolve(i & 1), timeout]);
    clearTimeout(timer);
  }
  const t1 = now();
  if (sum !== Math.floor(n / 2)) die('race: wrong sum');
  return (t1 - t0) * 1e6 / n;
}

// 6. timers: n timeouts with random delays in [0, window) ms, scheduled from
// inside an immediate (fresh loop clock); due = call time + delay, the clock
// read once per 1024 calls. Firing cost is process CPU time / n.
function timersRun(n, window) {
  const delay = new Uint32Array(n);
  let x = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    delay[i] = x % window;
  }
  const due = new Float64Array(n).fill(1); // faulted in now, not while scheduling
  return new Promise((done) => {
    let fired = 0, worst = -Infinity, worstLoop = -Infinity, schedEnd = 0, cpuSched = null;
    let schedMs = 0;
    function onTimer(i) {
      const t = now();
      const late = t - due[i];
      if (late > worst) worst = late;
      const lateLoop = t - Math.max(due[i], schedEnd);
      if (lateLoop > worstLoop) worstLoop = lateLoop;
      if (++fired === n) {
        const cpu = process.cpuUsage(cpuSched);
        done({
          sched_ns: schedMs * 1e6 / n,
          fire_ns: (cpu.user + cpu.system) * 1e3 / n,
          late_ms: worst,
          late_loop_ms: worstLoop,
          span_ms: t - schedEnd,
        });
      }
    }
    setImmediate(() => {
      let block = 0;
      const t0 = now();
      for (let i = 0; i < n; i++) {
        if ((i & 1023) === 0) block = now();
        const d = delay[i];
        due[i] = block + (d || 1);
        setTimeout(onTimer, d, i);
      }
      schedEnd = now();
      cpuSched = process.cpuUsage();
      schedMs = schedEnd - t0;
    });
  });
}

// 7. setImmediate: a batch scheduled at once, and a chain.
function immediatePass(n, chain) {
  return new Promise((done) => {
    let left = n;
    const t0 = now();
    const finish = () => done((now() - t0) * 1e6 / n);
    if (chain) {
      const cb = () => { if (--left > 0) setImmediate(cb); else finish(); };
      setImmediate(cb);
    } else {
      const cb = () => { if (--left === 0) finish(); };
      for (let i = 0; i < n; i++) setImmediate(cb);
    }
  });
}

// 8. memory per suspended async function: n of them awaiting one pending promise.
async function suspended(n) {
  let open;
  const gate = new Promise((resolve) => { open = resolve; });
  async function waitGate() { await gate; return 1; }
  const ps = new Array(n);
  waitGate(); // warm the function up once
  const h0 = heapUsed();
  const rss0 = statusKb('VmRSS');
  for (let i = 0; i < n; i++) ps[i] = waitGate();
  const h1 = heapUsed();
  const rss1 = statusKb('VmRSS');
  open(1);
  const values = await Promise.all(ps);
  if (values.length !== n) die('suspended: wrong count');
  return { rss_b: (rss1 - rss0) * 1024 / n, heap_b: (h1 - h0) / n };
}

// 9. HTTP client: n GETs, 64 at a time (64 async workers), with Node's fetch.
async function httpPass(n, url) {
  let left = n;
  let done = 0;
  async function worker() {
    while (left > 0) {
      left--;
      const res = await fetch(url);
      const body = await res.text();
      if (res.status !== 200 || body.length === 0) die(`fetch: status ${res.status}`);
      done++;
    }
  }
  const t0 = now();
  const c0 = process.cpuUsage();
  await Promise.all(Array.from({ length: 64 }, worker));
  const cpu = process.cpuUsage(c0);
  const t1 = now();
  if (done !== n) die(`http: ${done} of ${n} requests done`);
  return { us: (t1 - t0) * 1e3 / n, cpu_us: (cpu.user + cpu.system) / n };
}

// 10. HTTP server: the same short text as vow_bench serve.
function serve() {
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'text/plain; charset=utf-8');
    res.end('hello world\n');
  });
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`PORT ${server.address().port}\n`);
  });
}

// 11. files: n small files (1 KiB), written untimed, then read whole with
// fs/promises readFile by 64 async functions taking the next name in turn.
async function fsReadPass(dir, n) {
  const { readFile } = await import('node:fs/promises');
  let next = 0, bytes = 0;
  async function worker() {
    while (next < n) {
      const b = await readFile(`${dir}/f${next++}`);
      bytes += b.length;
    }
  }
  const t0 = now();
  const c0 = process.cpuUsage();
  await Promise.all(Array.from({ length: 64 }, worker));
  const cpu = process.cpuUsage(c0);
  const t1 = now();
  if (bytes !== n * 1024) die(`fs: read ${bytes} bytes of ${n * 1024}`);
  return { us: (t1 - t0) * 1e3 / n, cpu_us: (cpu.user + cpu.system) / n };
}

async function fsRead(n) {
  const fs = await import('node:fs');
  const dir = fs.mkdtempSync('/tmp/node-bench-fs-');
  const data = Buffer.alloc(1024, 'v');
  for (let i = 0; i < n; i++) fs.writeFileSync(`${dir}/f${i}`, data);
  await fsReadPass(dir, warm(n));
  const r = await fsReadPass(dir, n);
  fs.rmSync(dir, { recursive: true });
  return r;
}

// 10'. The same server through the runtime's own HTTP API.
function serveNative() {
  const handler = () =>
    new Response('hello world\n', { headers: { 'content-type': 'text/plain; charset=utf-8' } });
  if (globalThis.Bun) {
    const server = globalThis.Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: handler });
    process.stdout.write(`PORT ${server.port}\n`);
  } else if (globalThis.Deno) {
    globalThis.Deno.serve({
      port: 0,
      hostname: '127.0.0.1',
      onListen: ({ port }) => process.stdout.write(`PORT ${port}\n`),
    }, handler);
  } else {
    die('serve_native: neither Bun.serve nor Deno.serve (Node has only node:http)');
  }
}

// 12. TCP ping-pong: an echo server in this process and 64 connections, each
// sending a 64-byte message and waiting for its echo before the next, until n
// round trips are done (the same shape as vow_bench.c's tcp_pingpong).
async function tcpPingPong(n) {
  const server = net.createServer((socket) => {
    socket.on('data', (chunk) => socket.write(chunk)); // echo
    socket.on('end', () => socket.end());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  const message = Buffer.alloc(64, 'ping ');
  let left = n;
  let done = 0;
  function client() {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      let got = 0;
      const next = () => {
        if (left === 0) { socket.end(); return resolve(); }
        left--;
        got = 0;
        socket.write(message);
      };
      socket.on('connect', next);
      socket.on('data', (chunk) => {
        got += chunk.length;
        if (got === message.length) { done++; next(); }
      });
      socket.on('error', reject);
    });
  }
  const t0 = now();
  const c0 = process.cpuUsage();
  await Promise.all(Array.from({ length: 64 }, client));
  const cpu = process.cpuUsage(c0);
  const t1 = now();
  await new Promise((resolve) => server.close(resolve));
  if (done !== n) die(`tcp: ${done} of ${n} round trips done`);
  const ns = (t1 - t0) * 1e6 / n;
  return { krtps: 1e6 / ns, us: ns / 1000, cpu_us: (cpu.user + cpu.system) / n };
}

// spawn_true: spawn /bin/true and await its exit, 4 at a time (vow_bench's spawn_true).
async function spawnPass(n) {
  const { spawn } = await import('node:child_process');
  let next = 0, ok = 0;
  async function worker() {
    while (next < n) {
      next++;
      const child = spawn('/bin/true', [], { stdio: 'ignore' });
      const code = await new Promise((resolve, reject) => {
        child.on('exit', resolve);
        child.on('error', reject);
      });
      if (code === 0) ok++;
    }
  }
  const t0 = now();
  const c0 = process.cpuUsage();
  await Promise.all(Array.from({ length: 4 }, worker));
  const cpu = process.cpuUsage(c0);
  const t1 = now();
  if (ok !== n) die(`spawn: ${ok} of ${n} exited 0`);
  const us = (t1 - t0) * 1e3 / n;
  return { per_s: 1e6 / us, us, cpu_us: (cpu.user + cpu.system) / n };
}

switch (workload) {
  case 'microtask':
    await microtaskPass(warm(N));
    { const { r, cpu_ns } = await withCpu(N, () => microtaskPass(N)); report({ ns: r, cpu_ns }); }
    break;
  case 'then':
    await thenPass(warm(N), false);
    { const { r, cpu_ns } = await withCpu(N, () => thenPass(N, false)); report({ ns: r.ns, cpu_ns }); }
    break;
  case 'then_heap':
    report({ heap_b: (await thenPass(N, true)).heapB });
    break;
  case 'fanout': {
    await fanoutPass(warm(N), false);
    const { r, cpu_ns } = await withCpu(N, () => fanoutPass(N, false));
    report({ ns: r.ns, cpu_ns, rss_b: (statusKb('VmHWM') - RSS_BASE_KB) * 1024 / N });
    break;
  }
  case 'fanout_heap': {
    const r = await fanoutPass(N, true);
    report({ heap_b: r.pendingB, heap_all_b: r.allB });
    break;
  }
  case 'await_interleaved':
    await interleavedPass(warm(N));
    { const { r, cpu_ns } = await withCpu(N, () => interleavedPass(N)); report({ ns: r, cpu_ns }); }
    break;
  case 'await':
    await awaitPass(warm(N));
    { const { r, cpu_ns } = await withCpu(N, () => awaitPass(N)); report({ ns: r, cpu_ns }); }
    break;
  case 'asynccall':
    await asyncCallPass(warm(N));
    { const { r, cpu_ns } = await withCpu(N, () => asyncCallPass(N)); report({ ns: r, cpu_ns }); }
    break;
  case 'group_spawn':
    await groupSpawnPass(warm(N));
    { const { r, cpu_ns } = await withCpu(N, () => groupSpawnPass(N)); report({ ns: r, cpu_ns }); }
    break;
  case 'context':
    await contextPass(warm(N));
    { const { r, cpu_ns } = await withCpu(N, () => contextPass(N)); report({ ns: r, cpu_ns }); }
    break;
  case 'race':
    await racePass(warm(N));
    { const { r, cpu_ns } = await withCpu(N, () => racePass(N)); report({ ns: r, cpu_ns }); }
    break;
  case 'timers':
    report(await timersRun(N, WINDOW));
    break;
  case 'immediate_batch':
  case 'immediate_chain': {
    const chain = workload === 'immediate_chain';
    await immediatePass(warm(N), chain);
    const { r, cpu_ns } = await withCpu(N, () => immediatePass(N, chain));
    report({ ns: r, cpu_ns });
    break;
  }
  case 'suspended':
    report(await suspended(N));
    break;
  case 'http_client':
    if (!URL_ARG) die('http_client needs the server URL');
    await httpPass(warm(N), URL_ARG);
    report(await httpPass(N, URL_ARG));
    break;
  case 'fs_read_10k':
    report(await fsRead(N));
  case 'tcp_pingpong':
    await tcpPingPong(warm(N));
    report(await tcpPingPong(N));
    break;
  case 'spawn_true':
    await spawnPass(warm(N));
    report(await spawnPass(N));
    break;
  case 'serve':
    serve();
    break;
  case 'serve_native':
    serveNative();
    break;
  default:
    die(`unknown workload '${workload}'`);
}
