'use strict';
// The JavaScript reference runner for vow's conformance scenarios (FORMAT.md, version 1.1).
//
//   node tools/oracle/oracle.js FILE.json          run it, print the log lines, exit 0
//   node tools/oracle/oracle.js --js FILE.json     print the JavaScript the scenario stands for
//   node tools/oracle/oracle.js --trace FILE.json  run it instrumented; print JSON
//                                                  {"lines":[...],"timers":[...]} (timing.js)
//   node tools/oracle/oracle.js --timing [--gap MS] [--hop-lag MS] FILE.json
//                                                  run it instrumented and check FORMAT's timer
//                                                  rules (gap 20, hop lag 0: see timing.js);
//                                                  prints the problems, exit 1 if any
//
// A malformed file, or a scenario that prints a value FORMAT gives no printing for (an Error,
// a promise bound to no name), or uses a name not bound yet at run time: one line on stderr,
// exit 2. A promise prints as promise:NAME, NAME being the first name it was bound to: each
// statement that binds a promise name records the name for the promise unless it has one
// (only `resolved` can bind a promise that already has a name: Promise.resolve(p) === p).
//
// The scenario becomes a self-contained plain script (run `--js` output with `node x.js` and
// you get the same lines). The oracle compiles it and runs it with vm.runInThisContext in this
// very process, as the last thing it does: everything before is synchronous, so when the
// script ends nothing but the scenario's own work is on the event loop, and the loop then runs
// until it is empty. Log lines are buffered and written when the process exits.

const vm = require('vm');
const { ScenarioError, loadFile } = require('./validate');

// Names that cannot be used verbatim as JavaScript variables: reserved words, the helpers
// and parameter names of the generated code, and any global of Node.
const RESERVED = new Set(`break case catch class const continue debugger default delete do else
  enum export extends false finally for function if import in instanceof new null return super
  switch this throw true try typeof var void while with yield let static implements interface
  package private protected public await async of get set arguments eval undefined
  log x e k res rej`.split(/\s+/));

function jsName(n) {
  return RESERVED.has(n) || n in globalThis ? `_${n}` : n;
}

function str(s) {
  return JSON.stringify(s);
}

const PRELUDE = String.raw`const $lines = [];
let $failed = false;
function log(s) {
  $lines.push(s);
  if ($lines.length > 100000) $fail('more than 100000 log lines');
}
function $fail(msg) {
  if (!$failed) process.stderr.write($file + ': ' + msg + '\n');
  $failed = true;
  process.exit(2);
}
// The first name each promise was bound to (FORMAT 1.1: a promise prints as promise:NAME).
const $names = new WeakMap();
function $name(p, name) {
  if (!$names.has(p)) $names.set(p, name);
}
function P(v) {
  switch (typeof v) {
    case 'undefined':
      return 'undefined';
    case 'number':
      if (Number.isSafeInteger(v)) return String(v);
      break;
    case 'string':
      return JSON.stringify(v);
    case 'object':
      if (v === null) break;
      if (v instanceof Promise) {
        if ($names.has(v)) return 'promise:' + $names.get(v);
        $fail('the scenario prints a promise bound to no name, which FORMAT gives no printing for');
      }
      if (Array.isArray(v)) return '[' + v.map(P).join(',') + ']';
      if (v instanceof AggregateError) return 'AggregateError[' + v.errors.map(P).join(',') + ']';
      if (Object.getPrototypeOf(v) === Object.prototype) {
        if (v.status === 'fulfilled' && 'value' in v) return '{fulfilled:' + P(v.value) + '}';
        if (v.status === 'rejected' && 'reason' in v) return '{rejected:' + P(v.reason) + '}';
      }
      if (v instanceof Error) $fail('the scenario prints ' + v.name + ' "' + v.message + '", which FORMAT gives no printing for');
      break;
  }
  $fail('the scenario prints ' + String(v) + ', which FORMAT gives no printing for');
}
function $deferred() {
  let res, rej;
  const p = new Promise((a, b) => { res = a; rej = b; });
  p.res = res;
  p.rej = rej;
  return p;
}
function $bound(v, name) {
  if (v === undefined) $fail('name "' + name + '" is used at run time before its binding statement ran');
  return v;
}
// PRINT
process.on('unhandledRejection', (r) => log('unhandled ' + P(r)));
`;

const PRINT = String.raw`process.on('exit', () => {
  if (!$failed) process.stdout.write($lines.map((l) => l + '\n').join(''));
});
`;

// Instrumentation for --trace/--timing: records every timer (each interval tick separately)
// and immediate with the macrotask that created it and its nominal time.
const TRACE_PRELUDE = String.raw`const $trace = { n: 0, cur: { id: 0, t: 0, root: 0, hops: 0 }, timers: [] };
{
  const st = setTimeout, sim = setImmediate;
  globalThis.setTimeout = (fn, d) => {
    const c = $trace.cur;
    const r = { id: ++$trace.n, kind: 'timeout', host: c.id, t: c.t + d, delay: d, hops: c.hops + 1 };
    r.root = r.id;
    $trace.timers.push(r);
    return st(() => { $trace.cur = r; fn(); }, d);
  };
  globalThis.setImmediate = (fn) => {
    const c = $trace.cur;
    const r = { id: ++$trace.n, kind: 'immediate', host: c.id, t: c.t, root: c.root, hops: c.hops };
    $trace.timers.push(r);
    return sim(() => { $trace.cur = r; fn(); });
  };
}
function $interval(fn, ms, count) {
  const c = $trace.cur;
  const ticks = [];
  const iv = $trace.n + 1;
  for (let i = 1; i <= count; i++) {
    const r = { id: ++$trace.n, kind: 'tick', host: c.id, t: c.t + i * ms, delay: ms, tick: i, hops: c.hops + i, iv };
    r.root = r.id;
    ticks.push(r);
    $trace.timers.push(r);
  }
  let i = 0;
  return setInterval(() => { $trace.cur = ticks[Math.min(i++, ticks.length - 1)]; fn(); }, ms);
}
process.on('exit', () => {
  if (!$failed) process.stdout.write(JSON.stringify({ lines: $lines, timers: $trace.timers }) + '\n');
  $failed = true;
});
`;

function generate(doc, info, opts = {}) {
  const out = [];
  const trace = !!opts.trace;

  function name(n, node) {
    const j = jsName(n);
    return info.unchecked.has(node) ? `$bound(${j}, ${str(n)})` : j;
  }

  // ctx.arg: the JavaScript expression of {"arg": true} here
  function val(v, ctx) {
    if (v === null) return 'undefined';
    if (typeof v === 'number') return String(v);
    if (typeof v === 'string') return str(v);
    if ('p' in v) return name(v.p, v);
    return ctx.arg;
  }

  function labelled(l, expr) {
    return `log(${str(l + ' ')} + P(${expr}))`;
  }

  function fn(h, ctx, ind, isFinally) {
    if (h === null) return 'undefined';
    const hctx = { arg: isFinally ? 'undefined' : 'x' };
    const body = [];
    if ('log' in h) body.push(isFinally ? `log(${str(h.log)});` : `${labelled(h.log, 'x')};`);
    const inner = [];
    if ('do' in h) stmts(h.do, hctx, ind + '  ', inner);
    if ('ret' in h) inner.push(`${ind}  return ${val(h.ret, hctx)};`);
    if ('throw' in h) inner.push(`${ind}  throw ${val(h.throw, hctx)};`);
    const lines = body.map((b) => `${ind}  ${b}`).concat(inner);
    const params = isFinally ? '()' : '(x)';
    if (lines.length === 0) return `${params} => {}`;
    return `${params} => {\n${lines.join('\n')}\n${ind}}`;
  }

  function blockFn(list, ctx, ind, head, tail) {
    const inner = [];
    stmts(list, ctx, ind + '  ', inner);
    if (inner.length === 0) return `${head}{}${tail}`;
    return `${head}{\n${inner.join('\n')}\n${ind}}${tail}`;
  }

  function stmts(list, ctx, ind, acc) {
    for (const s of list) stmt(s, ctx, ind, acc);
  }

  function stmt(s, ctx, ind, acc) {
    const cb = { arg: null };
    const emit = (line) => acc.push(ind + line);
    // N = EXPR, then N's promise records its first name (FORMAT 1.1)
    const bindPromise = (line) => {
      emit(line);
      emit(`$name(${jsName(s[1])}, ${str(s[1])});`);
    };
    const vals = (list) => list.map((v) => val(v, ctx)).join(', ');
    switch (s[0]) {
      case 'log':
        emit(s.length === 3 ? `${labelled(s[1], val(s[2], ctx))};` : `log(${str(s[1])});`);
        return;
      case 'deferred':
        bindPromise(`${jsName(s[1])} = $deferred();`);
        return;
      case 'resolve':
        emit(`${name(s[1], s)}.res(${val(s[2], ctx)});`);
        return;
      case 'reject':
        emit(`${name(s[1], s)}.rej(${val(s[2], ctx)});`);
        return;
      case 'resolved':
        bindPromise(`${jsName(s[1])} = Promise.resolve(${val(s[2], ctx)});`);
        return;
      case 'rejected':
        bindPromise(`${jsName(s[1])} = Promise.reject(${val(s[2], ctx)});`);
        return;
      case 'then':
        bindPromise(`${jsName(s[1])} = ${name(s[2], s)}.then(${fn(s[3], ctx, ind, false)}, ${fn(s[4], ctx, ind, false)});`);
        return;
      case 'catch':
        bindPromise(`${jsName(s[1])} = ${name(s[2], s)}.catch(${fn(s[3], ctx, ind, false)});`);
        return;
      case 'finally':
        bindPromise(`${jsName(s[1])} = ${name(s[2], s)}.finally(${fn(s[3], ctx, ind, true)});`);
        return;
      case 'all':
      case 'allSettled':
      case 'race':
      case 'any':
        bindPromise(`${jsName(s[1])} = Promise.${s[0]}([${vals(s[2])}]);`);
        return;
      case 'micro':
        emit(blockFn(s[1], cb, ind, 'queueMicrotask(() => ', ');'));
        return;
      case 'timeout':
        emit(blockFn(s[3], cb, ind, `${jsName(s[1])} = setTimeout(() => `, `, ${s[2]});`));
        return;
      case 'interval': {
        const t = jsName(s[1]);
        const k = 'k'; // one block per interval: its counter never meets another
        emit(`{`);
        emit(`  let ${k} = 0;`);
        const head = `${t} = ${trace ? '$interval(' : 'setInterval('}() => `;
        const inner = [`${ind}    if (++${k} === ${s[3]}) clearInterval(${t});`];
        stmts(s[4], cb, ind + '    ', inner);
        emit(`  ${head}{\n${inner.join('\n')}\n${ind}  }, ${s[2]}${trace ? `, ${s[3]}` : ''});`);
        emit(`}`);
        return;
      }
      case 'clear':
        emit(`clearTimeout(${name(s[1], s)});`);
        return;
      case 'immediate':
        emit(blockFn(s[1], cb, ind, 'setImmediate(() => ', ');'));
        return;
      case 'async': {
        const inner = [`${ind}  let $;`];
        stmts(s[2], { arg: '$' }, ind + '  ', inner);
        bindPromise(`${jsName(s[1])} = (async () => {\n${inner.join('\n')}\n${ind}})();`);
        return;
      }
      case 'asyncgen': {
        const inner = [`${ind}  let $;`];
        stmts(s[2], { arg: '$' }, ind + '  ', inner);
        emit(`${jsName(s[1])} = async function* () {\n${inner.join('\n')}\n${ind}};`);
        return;
      }
      case 'await':
        emit(`$ = await ${val(s[1], ctx)};`);
        if (s.length === 3) emit(`${labelled(s[2], '$')};`);
        return;
      case 'return':
        emit(`return ${val(s[1], ctx)};`);
        return;
      case 'throw':
        emit(`throw ${val(s[1], ctx)};`);
        return;
      case 'try': {
        const a = [];
        const b = [`${ind}  $ = e;`];
        stmts(s[1], ctx, ind + '  ', a);
        stmts(s[2], ctx, ind + '  ', b);
        emit(`try {${a.length ? `\n${a.join('\n')}\n${ind}` : ''}} catch (e) {\n${b.join('\n')}\n${ind}}`);
        return;
      }
      case 'forawait': {
        const src = Array.isArray(s[1]) ? `[${vals(s[1])}]` : `${name(s[1].gen, s)}()`;
        emit(`for await (const x of ${src}) ${labelled(s[2], 'x')};`);
        return;
      }
      case 'yield':
        emit(`$ = yield ${val(s[1], ctx)};`);
        return;
      default:
        throw new Error(`internal: unknown statement ${s[0]}`);
    }
  }

  const names = [...info.names.keys()].map(jsName);
  out.push(`// ${doc.name !== undefined ? doc.name : '(unnamed scenario)'}: generated by tools/oracle/oracle.js`);
  out.push(`const $file = ${str(opts.file || 'scenario')};`);
  out.push(PRELUDE.replace('// PRINT\n', trace ? TRACE_PRELUDE : PRINT));
  if (names.length) out.push(`let ${names.join(', ')};\n`);
  stmts(doc.program, { arg: null }, '', out);
  return out.join('\n') + '\n';
}

function usage() {
  process.stderr.write('usage: node tools/oracle/oracle.js [--js | --trace | --timing [--gap MS] [--hop-lag MS]] FILE.json\n');
  process.exit(2);
}

function main(argv) {
  let mode = 'run';
  let gap = 20;
  let hopLag = 0;
  const files = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--js') mode = 'js';
    else if (a === '--trace') mode = 'trace';
    else if (a === '--timing') mode = 'timing';
    else if (a === '--gap') gap = Number(argv[++i]);
    else if (a === '--hop-lag') hopLag = Number(argv[++i]);
    else if (a.startsWith('--')) usage();
    else files.push(a);
  }
  if (files.length !== 1 || !(gap > 0) || !(hopLag >= 0)) usage();
  const file = files[0];
  let doc, info;
  try {
    ({ doc, info } = loadFile(file));
  } catch (e) {
    if (!(e instanceof ScenarioError)) throw e;
    process.stderr.write(`${file}: ${e.message}\n`);
    process.exit(2);
  }
  const js = generate(doc, info, { file, trace: mode !== 'run' && mode !== 'js' });
  if (mode === 'js') {
    process.stdout.write(js);
    return;
  }
  if (mode === 'timing') {
    const { checkTimers } = require('./timing');
    process.on('exit', (code) => {
      if (code !== 0) return;
      // The script's top-level let/const live in this context's global scope, which another
      // script run here can see. Setting $failed keeps the trace prelude from printing.
      const timers = vm.runInThisContext('$failed = true, $trace.timers');
      const problems = checkTimers(timers, gap, hopLag);
      for (const p of problems) process.stdout.write(`${file}: ${p}\n`);
      if (problems.length) process.exitCode = 1;
    });
  }
  // Node prints a PromiseRejectionHandledWarning on stderr when a reported rejection is handled
  // later; the scenario's output is stdout only, so drop Node's stderr printer of warnings.
  // (Node's own handling, including the tick it schedules for the warning, is unchanged.)
  process.removeAllListeners('warning');
  const script = new vm.Script(js, { filename: `${file}.js` });
  script.runInThisContext();
}

module.exports = { generate, jsName };

if (require.main === module) main(process.argv.slice(2));
