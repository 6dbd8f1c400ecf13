'use strict';
// FORMAT's timer rules, checked on a trace recorded by `oracle.js --trace` (the record of
// every timer, interval tick and immediate the run created, with the macrotask that created
// it and its nominal time: the sum of the delays on the chain of timers that created it).
//
// Each record: {id, kind: 'timeout'|'tick'|'immediate', host, t, delay, root, hops, iv}.
//   host: id of the macrotask that created it (0 = the main script)
//   t:    nominal time (for an immediate: the nominal time of its creator)
//   root: for an immediate, the timer (or main script, 0) whose macrotask it descends from
//   hops: see below;  iv: for an interval tick, which interval (the ticks of one interval are
//         one timer, so they are not compared with each other)
//
// Rules (gap = 20 in FORMAT; the generator uses a wider gap to stay clear of scheduling lag):
// 1. Two timers (every interval tick counts, cleared timers too) whose nominal times differ by
//    less than gap are allowed only when both are timeouts created in the same macrotask with
//    the same delay.
// 2. An immediate must not be raced against a timer: no timer other than its root may have a
//    nominal time within gap of the immediate's. (This also forbids an immediate created by
//    one of several same-time timers: the others may or may not run before it.)
//
// hopLag (0 in FORMAT) makes the rules robust against lag, which accumulates along chains: a
// timer created in a late callback is late too, and so is each tick of an interval (Node and
// libuv schedule the next tick from when the callback runs). Each record has `hops`: how many
// timer firings its time depends on (a timeout created by the main script: 1; created in its
// callback: 2; interval tick k: k more than its creator; an immediate: as its creator). The
// earlier of two events may be late by (hops - 1) * hopLag beyond the lag they share, so the
// gap required after it grows by that much.

function required(first, gap, hopLag) {
  return gap + Math.max(0, (first.hops || 0) - 1) * hopLag;
}

function checkTimers(records, gap, hopLag = 0) {
  const problems = [];
  const byId = new Map(records.map((r) => [r.id, r]));
  // a descends from b: b's callback (or one of its descendants) created a
  const descends = (a, b) => {
    for (let h = a.host; h; h = byId.has(h) ? byId.get(h).host : 0) if (h === b.id) return true;
    return false;
  };
  // Events of one chain cannot swap, so lag along it does not matter; FORMAT's gap still does.
  const need = (first, second) => (descends(second, first) ? gap : required(first, gap, hopLag));
  const apart = (a, b) => {
    const [first, second] = a.t <= b.t ? [a, b] : [b, a];
    return second.t - first.t >= need(first, second);
  };
  const timers = records.filter((r) => r.kind !== 'immediate');
  const desc = (r) => (r.kind === 'tick' ? `interval tick ${r.tick} (delay ${r.delay}) at ${r.t} ms` : `timeout (delay ${r.delay}) at ${r.t} ms`);
  for (let i = 0; i < timers.length; i++) {
    for (let j = i + 1; j < timers.length; j++) {
      const a = timers[i];
      const b = timers[j];
      if (a.kind === 'tick' && b.kind === 'tick' && a.iv === b.iv) continue; // one interval
      if (apart(a, b)) continue;
      if (a.kind === 'timeout' && b.kind === 'timeout' && a.host === b.host && a.delay === b.delay) continue;
      const [first, second] = a.t <= b.t ? [a, b] : [b, a];
      problems.push(`timer tie: ${desc(first)} and ${desc(second)} are less than ${need(first, second)} ms apart`);
    }
  }
  for (const im of records) {
    if (im.kind !== 'immediate') continue;
    for (const x of timers) {
      if (x.id === im.root || apart(x, im)) continue;
      problems.push(`immediate race: an immediate at ${im.t} ms and the ${desc(x)}`);
    }
  }
  return problems;
}

module.exports = { checkTimers };
