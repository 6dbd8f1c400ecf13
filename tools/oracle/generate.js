'use strict';
// Seeded random scenario generator.
//
//   node tools/oracle/generate.js --seed S --count N --out DIR [--prefix gen] [--jobs J]
//
// Writes DIR/PREFIX-S-K.json and DIR/PREFIX-S-K.expected (the oracle's output) for K = 1..N.
// The same seed gives byte-identical files: case K is drawn from its own PRNG (mulberry32 seeded
// with a hash of "S/K/attempt"), independent of the other cases and of --jobs.
//
// Each candidate is
//   1. validated (a failure is a generator bug: the run stops),
//   2. run once instrumented (oracle.js --trace) and checked against FORMAT's timer rules with a
//      30 ms gap instead of 20, widened by 15 ms per timer hop (timing.js), and for oracle
//      errors (an unprintable value): a candidate failing either is replaced by the next
//      attempt for the same K,
//   3. run twice more under the plain oracle: when the three outputs are not identical the case
//      is dropped (no files for that K) and counted as nondeterministic.
// A summary (cases written, attempts replaced, cases dropped, cases that print a promise,
// statement coverage) goes to stderr.
//
// FORMAT 1.1 (a promise seen as a value prints as promise:NAME): in about half of the cases some
// printed values and rejection reasons are promises (Gen.seen). Those choices are drawn from a
// second PRNG stream, seeded like the first with ".../seen" added, so that a case is otherwise
// the one the first stream alone draws, as in format 1.
//
// The generator keeps timers apart by construction: it knows, where it can, the macrotask a
// block runs in and that macrotask's nominal time (main script = 0, a timer's callback = its
// creator's time + delay, a handler = the later of where it is attached and where its source
// settles, ...). Where it cannot know (e.g. handlers of deferreds, asyncgen bodies) it creates
// no timers, intervals or immediates. Every timer (each interval tick) and every immediate is
// put on a timeline and must be GAP ms (plus HOP_LAG per timer hop of the earlier one) away from
// all others, except timeouts created in the same macrotask with the same delay (which may share
// their time) and an immediate with the timer it descends from.

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const { validate } = require('./validate');
const { formatScenario } = require('./format');
const { checkTimers } = require('./timing');

const GAP = 30; // FORMAT asks for 20 ms; keep a margin for scheduling lag
const HOP_LAG = 15; // and more after events late by a chain of timers (timing.js)
const MAXT = 500; // latest nominal time of any timer
const MAX_DEPTH = 3;
// FORMAT 1.1 (promises seen as values, Gen.seen): the share of cases that use them, and the
// range of the chance that such a case makes a seen value a promise
const SEEN_CASES = 0.5;
const SEEN_MIN = 0.2;
const SEEN_MAX = 0.6;
const ORACLE = path.join(__dirname, 'oracle.js');

// ---- PRNG ----------------------------------------------------------------------------------

function hash32(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function mulberry32(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- values --------------------------------------------------------------------------------

const WORDS = ['a', 'b', 'c', 'ok', 'no', 'yes', 'foo', 'bar', 'done', 'err', 'x', 'late', 'v1'];
// Strings that exercise P's JSON escaping and UTF-8 pass-through. No "\u0000" and no lone
// surrogates: common C JSON parsers (jansson) refuse them.
const ODD_STRINGS = ['', 'a"b', 'back\\slash', 'two\nlines', 'tab\there', 'caf\u00e9', '\u65e5\u672c',
  '\u{1F600}', 'ctl\u0001', 'del\u007f', 'sp ace', 'ls\u2028', 'slash/', '{}', '[1]', 'null', '0'];
const BIG_INTS = [9007199254740991, -9007199254740991, 4294967296, 2147483648, -2147483649, 1000000000000007];
const DELAYS = [];
for (let d = GAP; d <= 300; d += 5) DELAYS.push(d);

// ---- the generator -------------------------------------------------------------------------

// A macrotask record: {id, times: [{t, root}], immOK}. `times` has one entry, except for an
// interval body (one per tick). A context whose macrotask is unknown has mt = null.
const MAIN = { id: 0, times: [{ t: 0, root: 0, hops: 0 }] };

function later(a, b) {
  if (!a || !b) return null;
  if (a === b) return a;
  if (a.times.length !== 1 || b.times.length !== 1) return null;
  if (a.times[0].t > b.times[0].t) return a;
  if (b.times[0].t > a.times[0].t) return b;
  return null;
}

class Gen {
  // rand: the main stream; seenRand: the stream of FORMAT 1.1's promises seen as values (seen())
  constructor(rand, seenRand) {
    this.r = rand;
    this.r2 = seenRand;
    this.seenRate = 0;
    this.count = Object.create(null);
    this.labels = 0;
    this.meta = new Map(); // name -> {kind, settle, resolved}
    this.scopes = [];
    this.entries = []; // timeline: {t, kind: 'timeout'|'tick'|'imm', host, delay, root}
    this.nextId = 1;
    this.budget = 0;
  }

  // -- randomness
  f() { return this.r(); }
  int(a, b) { return a + Math.floor(this.r() * (b - a + 1)); }
  chance(p) { return this.r() < p; }
  pick(a) { return a[Math.floor(this.r() * a.length)]; }
  choose(options) {
    const live = options.filter((o) => o[0] > 0);
    let total = 0;
    for (const o of live) total += o[0];
    let x = this.r() * total;
    for (const o of live) {
      x -= o[0];
      if (x < 0) return o[1];
    }
    return live[live.length - 1][1];
  }

  // -- names
  fresh(prefix) {
    this.count[prefix] = (this.count[prefix] || 0) + 1;
    return `${prefix}${this.count[prefix]}`;
  }
  bind(name, meta) {
    this.meta.set(name, meta);
    this.scopes[this.scopes.length - 1].push(name);
  }
  visible(kinds) {
    const out = [];
    for (const s of this.scopes) for (const n of s) if (kinds.includes(this.meta.get(n).kind)) out.push(n);
    return out;
  }
  // A delay from DELAYS, mostly short ones (scenarios then run quickly).
  delay(max = 300) {
    const ds = DELAYS.filter((d) => d <= max);
    return ds[Math.floor(this.f() * this.f() * ds.length)];
  }
  label(prefix) {
    this.labels++;
    let l = `${prefix}${this.labels}`;
    if (this.chance(0.03)) l += this.pick([' x', ' \u00fc', ' "q"', ' \\', ' []']);
    return l;
  }

  // -- values: returns [V, settle-macrotask] (the macrotask where a promise value settles)
  value(ctx, { p = true, arg = true } = {}) {
    const proms = p ? this.visible(['deferred', 'promise']) : [];
    const argOK = arg && (ctx.fn === 'handler' || ctx.fn === 'async' || ctx.fn === 'asyncgen');
    const kind = this.choose([[3, 'int'], [2, 'str'], [0.7, 'null'], [proms.length ? 3.5 : 0, 'p'], [argOK ? 1.2 : 0, 'arg']]);
    switch (kind) {
      case 'int':
        return [this.choose([[7, () => this.int(0, 20)], [1.2, () => -this.int(1, 50)], [0.5, () => this.pick(BIG_INTS)], [0.3, () => this.int(100, 99999)]])(), ctx.mt];
      case 'str':
        return [this.chance(0.2) ? this.pick(ODD_STRINGS) : this.pick(WORDS), ctx.mt];
      case 'null':
        return [null, ctx.mt];
      case 'arg':
        return [{ arg: true }, ctx.mt];
      default: {
        const n = this.pick(proms);
        return [{ p: n }, later(ctx.mt, this.meta.get(n).settle)];
      }
    }
  }
  plain(ctx, arg = true) {
    return this.value(ctx, { p: false, arg })[0];
  }
  // FORMAT 1.1: where a value is seen rather than adopted (printed by log, or a rejection
  // reason: reject, rejected, throw), sometimes a promise instead of v. The choice comes from
  // a stream of its own, so that apart from these values a case is the one format 1 drew.
  seen(v) {
    if (this.seenRate === 0 || this.r2() >= this.seenRate) return v;
    const proms = this.visible(['deferred', 'promise']);
    return proms.length ? { p: proms[Math.floor(this.r2() * proms.length)] } : v;
  }

  // -- timeline
  static apart(a, b) {
    const [first, second] = a.t <= b.t ? [a, b] : [b, a];
    return second.t - first.t >= GAP + Math.max(0, first.hops - 1) * HOP_LAG;
  }
  slotFree(t, hops, kind, host, delay) {
    for (const e of this.entries) {
      if (Gen.apart(e, { t, hops })) continue;
      if (kind === 'timeout' && e.kind === 'timeout' && e.host === host && e.delay === delay && e.t === t) continue;
      return false;
    }
    return true;
  }
  immediateFree(mt) {
    return mt.times.every((x) => this.entries.every((e) => e.root === x.root || e.kind === 'imm' || Gen.apart(e, x)));
  }
  knownTime(ctx) {
    return ctx.mt && ctx.mt.times.length === 1 ? ctx.mt.times[0].t : null;
  }

  // -- blocks
  block(ctx, n) {
    this.scopes.push([]);
    const out = [];
    for (let i = 0; i < n && this.budget > 0; i++) {
      const s = this.statement(ctx);
      for (const x of s) out.push(x);
    }
    this.scopes.pop();
    return out;
  }
  size(ctx) {
    return ctx.depth >= MAX_DEPTH ? 1 : this.choose([[3, 1], [3, 2], [2, 3], [0.7, 4]]);
  }
  sub(ctx, fn, mt, extra = {}) {
    return { fn, mt, noBind: ctx.noBind || !!extra.noBind, depth: ctx.depth + 1 };
  }

  handler(ctx, srcSettle, isFinally) {
    const hctx = this.sub(ctx, isFinally ? 'finally' : 'handler', later(ctx.mt, srcSettle));
    const h = {};
    let settle = 'plain';
    if (this.chance(0.8)) h.log = this.label(isFinally ? 'fin' : 'h');
    if (ctx.depth < MAX_DEPTH && this.chance(0.25) && this.budget > 1) {
      const body = this.block(hctx, this.int(1, 2));
      if (body.length) h.do = body;
    }
    const r = this.f();
    if (r < (isFinally ? 0.3 : 0.5)) {
      const [v, s] = this.value(hctx);
      h.ret = v;
      if (v !== null && typeof v === 'object' && 'p' in v) settle = s;
    } else if (r < (isFinally ? 0.4 : 0.65)) {
      h.throw = this.seen(this.value(hctx, { p: false })[0]);
    }
    return [h, settle];
  }

  // Returns a list of statements (usually one).
  statement(ctx) {
    const c = ctx;
    const inAsync = c.fn === 'async' || c.fn === 'asyncgen';
    const canBind = !c.noBind;
    const deep = c.depth < MAX_DEPTH;
    const t = this.knownTime(c);
    const defs = this.visible(['deferred']);
    const unresolved = defs.filter((d) => !this.meta.get(d).resolved);
    const proms = this.visible(['deferred', 'promise']);
    const timers = this.visible(['timer']);
    const gens = this.visible(['gen']);
    const opts = [
      [2, 'log'],
      [canBind ? 1.4 : 0, 'deferred'],
      [defs.length ? (unresolved.length ? 3 : 0.8) : 0, 'settle'],
      [canBind ? 1.3 : 0, 'resolved'],
      [canBind && proms.length ? 3.5 : 0, 'then'],
      [canBind ? 1.5 : 0, 'combinator'],
      [deep ? 1 : 0, 'micro'],
      [canBind && deep && t !== null && t < MAXT - GAP ? 2 : 0, 'timeout'],
      [canBind && deep && t !== null && t < MAXT - 2 * GAP ? 0.5 : 0, 'interval'],
      [timers.length ? 0.6 : 0, 'clear'],
      [deep && c.mt && this.immediateFree(c.mt) ? 0.8 : 0, 'immediate'],
      [canBind && deep ? 1.6 : 0, 'async'],
      [canBind && deep ? 0.6 : 0, 'asyncgen'],
      [inAsync ? 6 : 0, 'await'],
      [inAsync && deep ? 1.2 : 0, 'try'],
      [inAsync ? (gens.length ? 3 : 0.6) : 0, 'forawait'],
      [c.fn === 'asyncgen' ? 4 : 0, 'yield'],
    ];
    const what = this.choose(opts);
    this.budget--;
    switch (what) {
      case 'log':
        return [this.chance(0.4) ? ['log', this.label('s')] : ['log', this.label('s'), this.seen(this.plain(c))]];
      case 'deferred': {
        const n = this.fresh('d');
        this.bind(n, { kind: 'deferred', settle: null });
        return [['deferred', n]];
      }
      case 'settle': {
        const d = unresolved.length && this.chance(0.85) ? this.pick(unresolved) : this.pick(defs);
        this.meta.get(d).resolved = true;
        if (this.chance(0.7)) {
          let v = this.value(c)[0];
          if (v !== null && typeof v === 'object' && v.p === d) v = this.plain(c);
          return [['resolve', d, v]];
        }
        return [['reject', d, this.seen(this.plain(c))]];
      }
      case 'resolved': {
        const n = this.fresh('p');
        if (this.chance(0.6)) {
          const [v, s] = this.value(c);
          this.bind(n, { kind: 'promise', settle: s });
          return [['resolved', n, v]];
        }
        const v = this.seen(this.plain(c));
        this.bind(n, { kind: 'promise', settle: c.mt });
        return [['rejected', n, v]];
      }
      case 'then': {
        const src = this.pick(proms);
        const ss = this.meta.get(src).settle;
        const n = this.fresh('p');
        const k = this.choose([[5, 'then'], [2, 'catch'], [2, 'finally']]);
        let stmt;
        let settles = [];
        if (k === 'then') {
          const form = this.choose([[5, 'h1'], [2, 'both'], [1.2, 'h2'], [0.3, 'none']]);
          let h1 = null;
          let h2 = null;
          if (form === 'h1' || form === 'both') { const [h, s] = this.handler(c, ss, false); h1 = h; settles.push(s); }
          if (form === 'h2' || form === 'both') { const [h, s] = this.handler(c, ss, false); h2 = h; settles.push(s); }
          stmt = ['then', n, src, h1, h2];
        } else {
          const [h, s] = this.handler(c, ss, k === 'finally');
          settles.push(s);
          stmt = [k, n, src, h];
        }
        let settle = later(c.mt, ss);
        for (const s of settles) if (s !== 'plain') settle = later(settle, s);
        this.bind(n, { kind: 'promise', settle });
        return [stmt];
      }
      case 'combinator': {
        const op = this.choose([[3, 'all'], [2, 'allSettled'], [2, 'race'], [2, 'any']]);
        const n = this.fresh('p');
        const len = this.choose([[1, 0], [2, 1], [4, 2], [3, 3], [1, 4]]);
        const items = [];
        let settle = len === 0 && op === 'race' ? null : c.mt;
        for (let i = 0; i < len; i++) {
          let v, s;
          if (i > 0 && this.chance(0.12)) {
            v = items[this.int(0, i - 1)]; // a duplicate input
            s = typeof v === 'object' && v !== null && 'p' in v ? later(c.mt, this.meta.get(v.p).settle) : c.mt;
          } else {
            [v, s] = this.value(c);
          }
          items.push(v);
          settle = settle && s && settle === s ? settle : null;
        }
        this.bind(n, { kind: 'promise', settle });
        return [[op, n, items]];
      }
      case 'micro':
        return [['micro', this.block(this.sub(c, 'callback', c.mt), this.size(c))]];
      case 'timeout':
        return this.timeout(c, t);
      case 'interval':
        return this.interval(c, t);
      case 'clear':
        return [['clear', this.pick(timers)]];
      case 'immediate': {
        const mt = { id: this.nextId++, times: c.mt.times.map((x) => ({ t: x.t, root: x.root, hops: x.hops })) };
        for (const x of c.mt.times) this.entries.push({ t: x.t, kind: 'imm', root: x.root, hops: x.hops });
        return [['immediate', this.block(this.sub(c, 'callback', mt), this.size(c))]];
      }
      case 'async':
        return [this.asyncStmt(c)];
      case 'asyncgen': {
        const g = this.fresh('g');
        const gctx = { fn: 'asyncgen', mt: null, noBind: true, depth: c.depth + 1 };
        const body = this.asyncBody(gctx, this.int(1, 4));
        this.bind(g, { kind: 'gen' });
        return [['asyncgen', g, body]];
      }
      case 'await': {
        const [v, s] = this.value(c);
        c.mt = later(c.mt, s);
        return [this.chance(0.65) ? ['await', v, this.label('w')] : ['await', v]];
      }
      case 'try': {
        const a = this.asyncBody({ ...c, depth: c.depth + 1 }, this.int(1, 3), true);
        const b = this.asyncBody({ ...c, mt: null, depth: c.depth + 1 }, this.int(1, 2), false);
        c.mt = null;
        return [['try', a, b]];
      }
      case 'forawait': {
        const lab = this.label('f');
        if (gens.length && this.chance(0.7)) {
          c.mt = null;
          const g = this.pick(gens);
          this.meta.get(g).used = true;
          return [['forawait', { gen: g }, lab]];
        }
        const items = [];
        for (let i = this.choose([[1, 0], [3, 1], [4, 2], [2, 3]]); i > 0; i--) {
          const [v, s] = this.value(c);
          items.push(v);
          c.mt = later(c.mt, s);
        }
        return [['forawait', items, lab]];
      }
      case 'yield': {
        const [v, s] = this.value(c);
        c.mt = later(c.mt, s);
        return [['yield', v]];
      }
      default:
        throw new Error(`internal: ${what}`);
    }
  }

  // Timeouts: one, or (sometimes) a group sharing the macrotask and delay.
  timeout(c, t) {
    const hops = c.mt.times[0].hops + 1;
    for (let tries = 0; tries < 12; tries++) {
      const small = t === 0 && this.chance(0.1);
      const d = small ? this.int(1, GAP - 1) : this.delay();
      const f = t + d;
      if (f > MAXT || !this.slotFree(f, hops, 'timeout', c.mt.id, d)) continue;
      const n = this.chance(0.15) ? this.int(2, 3) : 1;
      const out = [];
      for (let i = 0; i < n; i++) {
        // a later member may not join when an earlier one's body created an immediate
        if (i > 0 && (this.budget <= 0 || !this.slotFree(f, hops, 'timeout', c.mt.id, d))) break;
        if (i > 0) this.budget--;
        const name = this.fresh('t');
        const id = this.nextId++;
        this.entries.push({ t: f, kind: 'timeout', host: c.mt.id, delay: d, root: id, hops });
        this.bind(name, { kind: 'timer' });
        const mt = { id, times: [{ t: f, root: id, hops }] };
        out.push(['timeout', name, d, this.block(this.sub(c, 'callback', mt), this.size(c))]);
      }
      return out;
    }
    return [['log', this.label('s')]];
  }

  interval(c, t) {
    for (let tries = 0; tries < 12; tries++) {
      const ms = this.delay(150);
      const count = this.choose([[3, 1], [4, 2], [3, 3], [1, 4]]);
      const ticks = [];
      const h0 = c.mt.times[0].hops;
      for (let i = 1; i <= count; i++) ticks.push({ t: t + i * ms, hops: h0 + i });
      if (ticks[ticks.length - 1].t > MAXT || !ticks.every((x) => this.slotFree(x.t, x.hops, 'tick'))) continue;
      const name = this.fresh('t');
      const mt = { id: this.nextId++, times: [] };
      for (const x of ticks) {
        const id = this.nextId++;
        this.entries.push({ t: x.t, kind: 'tick', host: c.mt.id, delay: ms, root: id, hops: x.hops });
        mt.times.push({ t: x.t, root: id, hops: x.hops });
      }
      this.bind(name, { kind: 'timer' });
      const body = this.block(this.sub(c, 'callback', mt, { noBind: true }), this.size(c));
      if (this.chance(0.2)) body.push(['clear', name]); // stops after its first tick
      return [['interval', name, ms, count, body]];
    }
    return [['log', this.label('s')]];
  }

  // An async (or asyncgen) body; ctx.mt follows the awaits. Sometimes ends with return/throw.
  asyncBody(ctx, n, endsOK = true) {
    const body = this.block(ctx, n);
    if (!endsOK) return body;
    const r = this.f();
    if (r < 0.3) {
      const [v] = this.value(ctx);
      body.push(['return', v]);
    } else if (r < 0.42) {
      body.push(['throw', this.seen(this.plain(ctx))]);
    }
    return body;
  }

  asyncStmt(c) {
    const n = this.fresh('a');
    const actx = { fn: 'async', mt: c.mt, noBind: c.noBind, depth: c.depth + 1 };
    this.scopes.push([]);
    const body = this.block(actx, this.int(1, 4));
    let settle = actx.mt;
    const r = this.f();
    if (r < 0.35) {
      const [v, s] = this.value(actx);
      body.push(['return', v]);
      settle = later(settle, s);
    } else if (r < 0.47) {
      body.push(['throw', this.seen(this.plain(actx))]);
    }
    this.scopes.pop();
    this.bind(n, { kind: 'promise', settle });
    return ['async', n, body];
  }

  scenario(name) {
    // About a third of the cases see promises as values, each at its own rate.
    if (this.r2() < SEEN_CASES) this.seenRate = SEEN_MIN + this.r2() * (SEEN_MAX - SEEN_MIN);
    this.budget = this.int(5, 40);
    this.scopes.push([]);
    const ctx = { fn: 'main', mt: MAIN, noBind: false, depth: 0 };
    const program = [];
    while (this.budget > 0) for (const s of this.statement(ctx)) program.push(s);
    // Give some still-pending deferreds a late settlement, and use an unused generator.
    const pending = this.visible(['deferred']).filter((d) => !this.meta.get(d).resolved);
    if (pending.length && this.chance(0.6)) {
      for (let tries = 0; tries < 8; tries++) {
        const d = this.delay();
        if (!this.slotFree(d, 1, 'timeout', 0, d)) continue;
        const id = this.nextId++;
        this.entries.push({ t: d, kind: 'timeout', host: 0, delay: d, root: id, hops: 1 });
        const body = pending.map((p) => (this.chance(0.75) ? ['resolve', p, this.plain(ctx, false)] : ['reject', p, this.seen(this.plain(ctx, false))]));
        program.push(['timeout', this.fresh('t'), d, body]);
        break;
      }
    }
    for (const g of this.visible(['gen'])) {
      if (this.meta.get(g).used || !this.chance(0.8)) continue;
      const n = this.fresh('a');
      program.push(['async', n, [['forawait', { gen: g }, this.label('f')]]]);
    }
    return { name, program };
  }
}

function generateScenario(seed, k, attempt, prefix) {
  const g = new Gen(mulberry32(hash32(`${seed}/${k}/${attempt}`)), mulberry32(hash32(`${seed}/${k}/${attempt}/seen`)));
  return g.scenario(`${prefix}-${seed}-${k}`);
}

// ---- running the oracle --------------------------------------------------------------------

function runOracle(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [ORACLE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

async function makeCase(seed, k, prefix, tmp, stats) {
  for (let attempt = 0; attempt < 100; attempt++) {
    const doc = generateScenario(seed, k, attempt, prefix);
    try {
      validate(doc);
    } catch (e) {
      throw new Error(`generator bug: ${doc.name} attempt ${attempt} is invalid: ${e.message}\n${JSON.stringify(doc)}`);
    }
    const text = formatScenario(doc);
    const file = path.join(tmp, `${doc.name}.json`);
    fs.writeFileSync(file, text);
    const tr = await runOracle(['--trace', file]);
    if (tr.code !== 0) {
      stats.oracleErrors++;
      stats.oracleErrorSamples.push(tr.stderr.trim());
      continue;
    }
    const trace = JSON.parse(tr.stdout);
    const problems = checkTimers(trace.timers, GAP, HOP_LAG);
    if (problems.length) {
      stats.timing++;
      stats.timingSamples.push(`${doc.name}#${attempt}: ${problems[0]}`);
      continue;
    }
    const traced = trace.lines.map((l) => `${l}\n`).join('');
    const r1 = await runOracle([file]);
    const r2 = await runOracle([file]);
    if (r1.code !== 0 || r2.code !== 0 || r1.stdout !== r2.stdout || r1.stdout !== traced) {
      stats.dropped.push(doc.name);
      return null;
    }
    countStatements(doc.program, stats.coverage);
    if (/ promise:[a-z]/.test(r1.stdout)) stats.printsPromise++;
    return { name: doc.name, text, expected: r1.stdout };
  }
  throw new Error(`case ${k}: no acceptable scenario in 100 attempts`);
}

function countStatements(list, cov) {
  const bump = (k) => { cov[k] = (cov[k] || 0) + 1; };
  const val = (v) => {
    if (v === null) bump('V:null');
    else if (typeof v === 'number') bump('V:int');
    else if (typeof v === 'string') bump('V:string');
    else if ('p' in v) bump('V:p');
    else bump('V:arg');
  };
  const handler = (h) => {
    if (h === null) return bump('H:null');
    bump(`H:${['log', 'do', 'ret', 'throw'].filter((f) => f in h).join('+') || 'empty'}`);
    if (h.do) countStatements(h.do, cov);
    if ('ret' in h) val(h.ret);
    if ('throw' in h) val(h.throw);
  };
  for (const s of list) {
    const op = s[0];
    bump(op === 'log' ? `log/${s.length - 1}` : op === 'await' ? `await/${s.length - 1}` : op);
    switch (op) {
      case 'log': if (s.length === 3) val(s[2]); break;
      case 'resolve': case 'reject': case 'resolved': case 'rejected': val(s[2]); break;
      case 'then': handler(s[3]); handler(s[4]); break;
      case 'catch': case 'finally': handler(s[3]); break;
      case 'all': case 'allSettled': case 'race': case 'any':
        bump(`${op}/${s[2].length === 0 ? 'empty' : s[2].some((v) => v && v.p) ? (s[2].every((v) => v && v.p) ? 'promises' : 'mixed') : 'plain'}`);
        s[2].forEach(val);
        break;
      case 'micro': case 'immediate': countStatements(s[1], cov); break;
      case 'timeout': countStatements(s[3], cov); break;
      case 'interval': countStatements(s[4], cov); break;
      case 'async': case 'asyncgen': countStatements(s[2], cov); break;
      case 'await': case 'return': case 'throw': case 'yield': val(s[1]); break;
      case 'try': countStatements(s[1], cov); countStatements(s[2], cov); break;
      case 'forawait':
        if (Array.isArray(s[1])) { bump('forawait/array'); s[1].forEach(val); } else bump('forawait/gen');
        break;
      default: break;
    }
  }
}

function parseArgs(argv) {
  // Two oracle runs per CPU: many more make Node's timers late enough to reorder (timing.js).
  const o = { prefix: 'gen', jobs: os.cpus().length * 2 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--seed') { o.seed = v; i++; }
    else if (a === '--count') { o.count = Number(v); i++; }
    else if (a === '--out') { o.out = v; i++; }
    else if (a === '--prefix') { o.prefix = v; i++; }
    else if (a === '--jobs') { o.jobs = Number(v); i++; }
    else if (a === '--quiet') o.quiet = true;
    else o.bad = a;
  }
  if (o.bad || o.seed === undefined || !/^[A-Za-z0-9_]+$/.test(o.seed) || !(o.count >= 1) || !o.out ||
      !/^[a-z][a-z0-9_-]*$/.test(o.prefix) || !(o.jobs >= 1)) {
    process.stderr.write('usage: node tools/oracle/generate.js --seed S --count N --out DIR [--prefix gen] [--jobs J] [--quiet]\n' +
      '  S: letters, digits, _;  PREFIX: ^[a-z][a-z0-9_-]*$\n');
    process.exit(2);
  }
  return o;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  fs.mkdirSync(o.out, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vow-gen-'));
  const stats = { timing: 0, timingSamples: [], oracleErrors: 0, oracleErrorSamples: [], dropped: [], coverage: {}, printsPromise: 0 };
  const results = new Array(o.count + 1);
  let next = 1;
  let done = 0;
  async function worker() {
    while (next <= o.count) {
      const k = next++;
      results[k] = await makeCase(o.seed, k, o.prefix, tmp, stats);
      done++;
      if (!o.quiet && process.stderr.isTTY) process.stderr.write(`\rgenerate: ${done}/${o.count}`);
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.min(o.jobs, o.count) }, worker));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  if (!o.quiet && process.stderr.isTTY) process.stderr.write('\n');
  let written = 0;
  for (let k = 1; k <= o.count; k++) {
    const r = results[k];
    if (!r) continue;
    fs.writeFileSync(path.join(o.out, `${r.name}.json`), r.text);
    fs.writeFileSync(path.join(o.out, `${r.name}.expected`), r.expected);
    written++;
  }
  const log = (s) => process.stderr.write(`${s}\n`);
  log(`generate: seed ${o.seed}: ${written} cases written to ${o.out}, ${stats.dropped.length} dropped as nondeterministic` +
    `${stats.dropped.length ? ` (${stats.dropped.join(' ')})` : ''}`);
  log(`generate: candidates replaced: ${stats.timing} for timer-rule problems, ${stats.oracleErrors} for oracle errors`);
  log(`generate: ${stats.printsPromise} cases print a promise (FORMAT 1.1)`);
  if (!o.quiet) {
    for (const s of stats.timingSamples.slice(0, 3)) log(`  timing: ${s}`);
    for (const s of stats.oracleErrorSamples.slice(0, 3)) log(`  oracle: ${s}`);
    const cov = Object.keys(stats.coverage).sort().map((k) => `${k}=${stats.coverage[k]}`);
    log(`generate: coverage: ${cov.join(' ')}`);
  }
}

module.exports = { generateScenario, mulberry32, hash32 };

if (require.main === module) {
  main().catch((e) => {
    process.stderr.write(`generate: ${e.stack || e.message}\n`);
    process.exit(1);
  });
}
