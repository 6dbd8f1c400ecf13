'use strict';
// Checks a scenario against /work/shared/conformance/FORMAT.md (version 1.1).
//
//   node tools/oracle/validate.js FILE.json...   prints "FILE: ok" or "FILE: problem" (exit 2)
//
// As a module: parseScenario(text) -> doc, validate(doc) -> info; both throw ScenarioError
// with a one-line message naming the place (e.g. "program[3][4]: ...").
//
// Readings of FORMAT beyond its statement table (tests/conformance/README.md lists them too):
// - a name is bound by at most one statement, and every use must come after its binding in
//   program order (a depth-first walk of the file). The binding of `async` and `asyncgen`
//   and of `then`/`catch`/`finally` counts as made after the body/handlers, because the body
//   runs (or the handlers may run) before the name would exist; `timeout`/`interval` bind
//   their name before the body (the callback always runs later, so `clear T` inside T's own
//   body is fine).
// - a use whose binding statement is not in the same or an enclosing block cannot be proven
//   bound at run time; validate() reports such uses in info.unchecked and the oracle checks
//   them when they run (an unbound name at run time is a scenario error, exit 2).
// - kinds: resolve/reject need a deferred; {"p":N} and then/catch/finally sources need a
//   promise (deferred or otherwise); clear needs a timer; {"gen":G} needs an asyncgen.
// - await/return/throw/try/forawait stand directly in an async or asyncgen body, or in a
//   try block of one; yield only in an asyncgen body. A micro/timeout/interval/immediate
//   callback or a handler nested in an async body is a plain function: they are not allowed
//   there.
// - {"arg":true} stands directly in a handler (not a finally handler: it has no argument)
//   or in an async/asyncgen body (try blocks included), never at top level nor in a
//   micro/timeout/interval/immediate callback.
// - labels are strings without "\n" or "\r" (the output is line-based).

class ScenarioError extends Error {}

const NAME_RE = /^[a-z][a-z0-9_]*$/;
const COMBINATORS = new Set(['all', 'allSettled', 'race', 'any']);

function fail(where, msg) {
  throw new ScenarioError(where ? `${where}: ${msg}` : msg);
}

// JSON.parse loses the spelling of numbers: 1.0 and 1e3 parse as integers. FORMAT's integers
// are JSON integers, so reject fractions and exponents in the source text.
function checkNumberSpelling(text) {
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === '"') {
      i++;
      while (i < n && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      let j = i + 1;
      while (j < n && /[0-9.eE+-]/.test(text[j])) j++;
      const tok = text.slice(i, j);
      if (/[.eE]/.test(tok)) fail('', `number ${tok} is not an integer (write integers without fraction or exponent)`);
      i = j;
    } else {
      i++;
    }
  }
}

function parseScenario(text) {
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    fail('', `not valid JSON (${e.message})`);
  }
  checkNumberSpelling(text);
  return doc;
}

function isPlainObject(v) {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v) {
  if (v === null) return 'null';
  if (Array.isArray(v)) return v.length ? 'an array' : 'an empty array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return JSON.stringify(v).length > 40 ? 'a string' : `the string ${JSON.stringify(v)}`;
  return `${typeof v} ${JSON.stringify(v)}`;
}

const KIND_WORD = { deferred: 'a deferred', promise: 'a promise', timer: 'a timer', gen: 'an asyncgen' };

function validate(doc) {
  if (!isPlainObject(doc)) fail('', `the file must hold a JSON object, not ${describe(doc)}`);
  for (const k of Object.keys(doc)) {
    if (k !== 'name' && k !== 'program') fail('', `unknown top-level key "${k}" (only "name" and "program")`);
  }
  if ('name' in doc && typeof doc.name !== 'string') fail('name', `must be a string, not ${describe(doc.name)}`);
  if (!('program' in doc)) fail('', 'missing "program"');
  if (!Array.isArray(doc.program)) fail('program', `must be an array of statements, not ${describe(doc.program)}`);

  const bound = new Map(); // name -> {kind, where}
  const unchecked = new WeakSet(); // statement arrays / {"p"} objects whose name use needs a run-time check
  const frames = []; // stack of Sets: names bound in each enclosing block so far

  function dominated(name) {
    return frames.some((f) => f.has(name));
  }

  function checkName(where, v, what) {
    if (typeof v !== 'string') fail(where, `${what} must be a name string, not ${describe(v)}`);
    if (!NAME_RE.test(v)) fail(where, `bad name ${JSON.stringify(v)} (names match ^[a-z][a-z0-9_]*$)`);
  }

  function bind(where, name, kind) {
    checkName(where, name, 'the name');
    if (bound.has(name)) fail(where, `name "${name}" is bound twice (first at ${bound.get(name).where})`);
    bound.set(name, { kind, where });
    frames[frames.length - 1].add(name);
  }

  // kinds: list of acceptable kinds. node: the object to mark when the use is not dominated.
  function use(where, name, kinds, node) {
    checkName(where, name, 'the name');
    const b = bound.get(name);
    if (!b) fail(where, `name "${name}" is used before it is bound`);
    if (!kinds.includes(b.kind)) {
      fail(where, `"${name}" is ${KIND_WORD[b.kind]} (bound at ${b.where}), ${kinds.map((k) => KIND_WORD[k]).join(' or ')} is needed here`);
    }
    if (!dominated(name)) unchecked.add(node);
  }

  function label(where, l) {
    if (typeof l !== 'string') fail(where, `a label must be a string, not ${describe(l)}`);
    if (/[\n\r]/.test(l)) fail(where, 'a label must not contain a line break');
  }

  function argAllowed(ctx) {
    return ctx.fn === 'handler' || ctx.fn === 'async' || ctx.fn === 'asyncgen';
  }

  function value(where, v, ctx) {
    if (v === null || typeof v === 'string') return;
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) fail(where, `number ${v} is not an integer with |n| < 2^53`);
      return;
    }
    if (isPlainObject(v)) {
      const keys = Object.keys(v);
      if (keys.length === 1 && keys[0] === 'p') {
        use(where, v.p, ['deferred', 'promise'], v);
        return;
      }
      if (keys.length === 1 && keys[0] === 'arg') {
        if (v.arg !== true) fail(where, '{"arg": ...} must be {"arg": true}');
        if (!argAllowed(ctx)) {
          const why = {
            main: 'at top level',
            callback: `in a ${ctx.cb} callback`,
            finally: 'in a finally handler (it takes no argument)',
          }[ctx.fn];
          fail(where, `{"arg": true} is not allowed ${why}`);
        }
        return;
      }
      if (keys.length === 1 && keys[0] === 'gen') fail(where, '{"gen": G} stands only as the source of forawait');
      fail(where, `unknown value object with keys ${JSON.stringify(keys)} (values are integers, strings, null, {"p": N}, {"arg": true})`);
    }
    fail(where, `bad value: ${describe(v)} (values are integers, strings, null, {"p": N}, {"arg": true})`);
  }

  function delay(where, ms) {
    if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 1 || ms > 300) {
      fail(where, `a delay must be an integer from 1 to 300 ms, not ${describe(ms)}`);
    }
  }

  function block(where, list, ctx) {
    if (!Array.isArray(list)) fail(where, `must be a list of statements, not ${describe(list)}`);
    frames.push(new Set());
    list.forEach((s, i) => statement(`${where}[${i}]`, s, ctx));
    frames.pop();
  }

  function handler(where, h, ctx, isFinally) {
    if (!isPlainObject(h)) fail(where, `a handler must be an object${isFinally ? '' : ' or null'}, not ${describe(h)}`);
    for (const k of Object.keys(h)) {
      if (!['log', 'do', 'ret', 'throw'].includes(k)) fail(where, `unknown handler field "${k}" (fields: log, do, ret, throw)`);
    }
    if ('ret' in h && 'throw' in h) fail(where, 'a handler has "ret" or "throw", not both');
    const hctx = { fn: isFinally ? 'finally' : 'handler', noBind: ctx.noBind, noBindWhy: ctx.noBindWhy };
    if ('log' in h) label(`${where}.log`, h.log);
    if ('do' in h) block(`${where}.do`, h.do, hctx);
    if ('ret' in h) value(`${where}.ret`, h.ret, hctx);
    if ('throw' in h) value(`${where}.throw`, h.throw, hctx);
  }

  function arity(where, s, ...ns) {
    if (!ns.includes(s.length)) {
      fail(where, `"${s[0]}" takes ${ns.map((n) => n - 1).join(' or ')} argument${ns.length === 1 && ns[0] === 2 ? '' : 's'}, got ${s.length - 1}`);
    }
  }

  function needAsync(where, s, ctx) {
    if (ctx.fn !== 'async' && ctx.fn !== 'asyncgen') {
      fail(where, `"${s[0]}" stands only in an async body (here: ${ctxWord(ctx)})`);
    }
  }

  function ctxWord(ctx) {
    if (ctx.fn === 'main') return 'top level';
    if (ctx.fn === 'callback') return `a ${ctx.cb} callback`;
    if (ctx.fn === 'handler') return 'a handler';
    if (ctx.fn === 'finally') return 'a finally handler';
    if (ctx.fn === 'async') return 'an async body';
    return 'an asyncgen body';
  }

  function statement(where, s, ctx) {
    if (!Array.isArray(s) || s.length === 0 || typeof s[0] !== 'string') {
      fail(where, `a statement must be an array starting with its name, not ${describe(s)}`);
    }
    const op = s[0];
    const binds = ['deferred', 'resolved', 'rejected', 'then', 'catch', 'finally', 'timeout', 'interval', 'async', 'asyncgen'].includes(op) || COMBINATORS.has(op);
    if (binds && ctx.noBind) fail(where, `"${op}" binds a name, so it may not stand in ${ctx.noBindWhy}`);
    const cb = (what, extra) => ({ fn: 'callback', cb: what, noBind: ctx.noBind || !!extra, noBindWhy: extra || ctx.noBindWhy });
    switch (op) {
      case 'log':
        arity(where, s, 2, 3);
        label(where, s[1]);
        if (s.length === 3) value(where, s[2], ctx);
        return;
      case 'deferred':
        arity(where, s, 2);
        bind(where, s[1], 'deferred');
        return;
      case 'resolve':
      case 'reject':
        arity(where, s, 3);
        use(where, s[1], ['deferred'], s);
        value(where, s[2], ctx);
        return;
      case 'resolved':
      case 'rejected':
        arity(where, s, 3);
        checkName(where, s[1], 'the name');
        value(where, s[2], ctx);
        bind(where, s[1], 'promise');
        return;
      case 'then':
        arity(where, s, 5);
        checkName(where, s[1], 'the name');
        use(where, s[2], ['deferred', 'promise'], s);
        if (s[3] !== null) handler(`${where}[3]`, s[3], ctx, false);
        if (s[4] !== null) handler(`${where}[4]`, s[4], ctx, false);
        bind(where, s[1], 'promise');
        return;
      case 'catch':
      case 'finally':
        arity(where, s, 4);
        checkName(where, s[1], 'the name');
        use(where, s[2], ['deferred', 'promise'], s);
        handler(`${where}[3]`, s[3], ctx, op === 'finally');
        bind(where, s[1], 'promise');
        return;
      case 'all':
      case 'allSettled':
      case 'race':
      case 'any':
        arity(where, s, 3);
        checkName(where, s[1], 'the name');
        if (!Array.isArray(s[2])) fail(where, `"${op}" takes a list of values, not ${describe(s[2])}`);
        s[2].forEach((v, i) => value(`${where}[2][${i}]`, v, ctx));
        bind(where, s[1], 'promise');
        return;
      case 'micro':
        arity(where, s, 2);
        block(`${where}[1]`, s[1], cb('micro'));
        return;
      case 'timeout':
        arity(where, s, 4);
        delay(where, s[2]);
        bind(where, s[1], 'timer');
        block(`${where}[3]`, s[3], cb('timeout'));
        return;
      case 'interval':
        arity(where, s, 5);
        delay(where, s[2]);
        if (typeof s[3] !== 'number' || !Number.isSafeInteger(s[3]) || s[3] < 1) {
          fail(where, `an interval COUNT must be an integer >= 1, not ${describe(s[3])}`);
        }
        bind(where, s[1], 'timer');
        block(`${where}[4]`, s[4], cb('interval', 'an interval body'));
        return;
      case 'clear':
        arity(where, s, 2);
        use(where, s[1], ['timer'], s);
        return;
      case 'immediate':
        arity(where, s, 2);
        block(`${where}[1]`, s[1], cb('immediate'));
        return;
      case 'async':
        arity(where, s, 3);
        checkName(where, s[1], 'the name');
        block(`${where}[2]`, s[2], { fn: 'async', noBind: ctx.noBind, noBindWhy: ctx.noBindWhy });
        bind(where, s[1], 'promise');
        return;
      case 'asyncgen':
        arity(where, s, 3);
        checkName(where, s[1], 'the name');
        block(`${where}[2]`, s[2], { fn: 'asyncgen', noBind: true, noBindWhy: 'an asyncgen body' });
        bind(where, s[1], 'gen');
        return;
      case 'await':
        arity(where, s, 2, 3);
        needAsync(where, s, ctx);
        value(where, s[1], ctx);
        if (s.length === 3) label(where, s[2]);
        return;
      case 'return':
      case 'throw':
        arity(where, s, 2);
        needAsync(where, s, ctx);
        value(where, s[1], ctx);
        return;
      case 'try':
        arity(where, s, 3);
        needAsync(where, s, ctx);
        block(`${where}[1]`, s[1], ctx);
        block(`${where}[2]`, s[2], ctx);
        return;
      case 'forawait':
        arity(where, s, 3);
        needAsync(where, s, ctx);
        if (Array.isArray(s[1])) {
          s[1].forEach((v, i) => value(`${where}[1][${i}]`, v, ctx));
        } else if (isPlainObject(s[1]) && Object.keys(s[1]).length === 1 && 'gen' in s[1]) {
          use(where, s[1].gen, ['gen'], s);
        } else {
          fail(where, `the source of forawait is a list of values or {"gen": G}, not ${describe(s[1])}`);
        }
        label(where, s[2]);
        return;
      case 'yield':
        arity(where, s, 2);
        if (ctx.fn !== 'asyncgen') fail(where, `"yield" stands only in an asyncgen body (here: ${ctxWord(ctx)})`);
        value(where, s[1], ctx);
        return;
      default:
        fail(where, `unknown statement "${op}"`);
    }
  }

  block('program', doc.program, { fn: 'main', noBind: false });
  return { unchecked, names: bound };
}

function loadFile(file) {
  const fs = require('fs');
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ScenarioError(`cannot read the file (${e.code || e.message})`);
  }
  const doc = parseScenario(text);
  const info = validate(doc);
  return { doc, info };
}

module.exports = { ScenarioError, parseScenario, validate, loadFile, NAME_RE };

if (require.main === module) {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    process.stderr.write('usage: node tools/oracle/validate.js FILE.json...\n');
    process.exit(2);
  }
  let bad = 0;
  for (const f of files) {
    try {
      loadFile(f);
      process.stdout.write(`${f}: ok\n`);
    } catch (e) {
      if (!(e instanceof ScenarioError)) throw e;
      process.stderr.write(`${f}: ${e.message}\n`);
      bad++;
    }
  }
  process.exit(bad ? 2 : 0);
}
