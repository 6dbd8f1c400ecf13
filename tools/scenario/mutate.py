#!/usr/bin/env python3
"""Robustness check for vow-scenario: runs it on randomly mutated corpus files.

    python3 tools/scenario/mutate.py RUNNER DIR... [--count N] [--seed S]
                                     [--timeout SEC] [--jobs J] [--validate] [--keep DIR]

Each case is a corpus file (*.json under the DIRs) changed at random, either as
text (truncated, bytes flipped, inserted or deleted) or as JSON (a node replaced
by another value, statements dropped, duplicated, swapped or moved between
blocks, statement names changed, numbers pushed to their limits), so that many
mutants are still well-formed and run, and the rest probe the checks.

A case fails when the runner exits with anything but 0 or 2, times out, prints
a sanitizer report, or exits 2 without naming the file on the first stderr
line. Build the runner with -DVOW_SANITIZE=address,undefined to catch memory
errors; ASAN_OPTIONS=detect_leaks=1 is set for it.

--validate also runs tools/oracle/validate.js on every mutant and checks that
the runner refuses exactly the files it refuses (`RUNNER --check`), except
where the JSON parsers knowingly differ: jansson refuses escaped lone UTF-16
surrogates ("\ud800") and nesting deeper than 2048, which Node.js accepts.

Failing mutants are copied to --keep DIR (default: a fresh directory under
/tmp) and listed. Exit status 0 when no case failed.
"""

import argparse
import concurrent.futures
import glob
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
VALIDATE_JS = os.path.join(HERE, "..", "oracle", "validate.js")

OPS = ["log", "deferred", "resolve", "reject", "resolved", "rejected", "then", "catch",
       "finally", "all", "allSettled", "race", "any", "micro", "timeout", "interval",
       "clear", "immediate", "async", "asyncgen", "await", "return", "throw", "try",
       "forawait", "yield"]
ODD_NUMBERS = [0, -1, 1, 300, 301, 2**31, 2**53 - 1, 2**53, -(2**53) + 1, -(2**53),
               10**30, 1.5, 1e3, -0.0, 100000, 10**12]
ODD_STRINGS = ["", "a\nb", "x\r", "\u0000", "caf\u00e9", "\U0001F600", "Z", "1a", "a-b",
               "_", "a" * 300, "\"", "\\"]


# ---- mutations ---------------------------------------------------------------------

def names_in(doc):
    """Every string that looks like a name, to reuse in mutations."""
    out = set()

    def walk(v):
        if isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, str) and v[:1].islower() and v.replace("_", "a").isalnum() and len(v) < 12:
            out.add(v)

    walk(doc)
    return sorted(out) or ["p"]


def containers(v, acc):
    """All lists and dicts in the document, in a stable order."""
    if isinstance(v, list):
        acc.append(v)
        for x in v:
            containers(x, acc)
    elif isinstance(v, dict):
        acc.append(v)
        for k in sorted(v):
            containers(v[k], acc)
    return acc


def statement_lists(doc):
    """Lists whose items are statements (arrays starting with a known name)."""
    return [c for c in containers(doc, [])
            if isinstance(c, list) and c and all(isinstance(s, list) and s and s[0] in OPS for s in c)]


def random_value(rnd, names):
    name = rnd.choice(names)
    return rnd.choice([
        None, True, False, [], {}, rnd.choice(ODD_NUMBERS), rnd.randint(-50, 400),
        rnd.choice(ODD_STRINGS), name, {"p": name}, {"arg": True}, {"arg": False},
        {"gen": name}, {"p": name, "arg": True}, [["log", "m"]], {"log": "h", "ret": {"arg": True}},
        {"log": "h", "throw": name}, ["log", "x", {"p": name}],
    ])


NON_BINDING = {"log", "resolve", "reject", "clear", "micro", "immediate", "await", "yield", "forawait"}
VALUE_ARG = {"log": 2, "resolve": 2, "reject": 2, "resolved": 2, "rejected": 2, "await": 1, "return": 1,
             "throw": 1, "yield": 1}


def mutate_gently(doc, rnd):
    """A change that usually keeps the scenario valid, so that it still runs."""
    lists = statement_lists(doc)
    if not lists:
        return
    block = rnd.choice(lists)
    i = rnd.randrange(len(block))
    s = block[i]
    op = s[0]
    kind = rnd.randrange(5)
    if kind == 0 and op in NON_BINDING:
        del block[i]
    elif kind == 1 and op in NON_BINDING:
        block.insert(rnd.randrange(len(block) + 1), json.loads(json.dumps(s)))
    elif kind == 2 and op in ("timeout", "interval") and len(s) > 2:
        s[2] = rnd.randint(1, 300)
        if op == "interval" and len(s) > 3:
            s[3] = rnd.randint(1, 6)
    elif kind == 3 and op in VALUE_ARG and len(s) > VALUE_ARG[op]:
        s[VALUE_ARG[op]] = rnd.choice([None, rnd.randint(-9, 99), rnd.choice(ODD_STRINGS[:9]), "v",
                                       s[VALUE_ARG[op]]])
    else:  # a handler's ret becomes a throw, or the other way round
        for x in s[1:]:
            if isinstance(x, dict) and ("ret" in x or "throw" in x):
                k, other = ("ret", "throw") if "ret" in x else ("throw", "ret")
                x[other] = x.pop(k)
                break


def mutate_json(doc, rnd):
    if rnd.random() < 0.5:
        for _ in range(rnd.randint(1, 3)):
            mutate_gently(doc, rnd)
        return doc
    names = names_in(doc)
    for _ in range(rnd.choice([1, 1, 1, 2, 3])):
        kind = rnd.randrange(8)
        lists = statement_lists(doc)
        if kind <= 1 or not lists:  # replace a node's child by another value
            cs = [c for c in containers(doc, []) if c]
            if not cs:
                return doc
            c = rnd.choice(cs)
            if isinstance(c, list):
                c[rnd.randrange(len(c))] = random_value(rnd, names)
            else:
                c[rnd.choice(sorted(c))] = random_value(rnd, names)
            continue
        block = rnd.choice(lists)
        i = rnd.randrange(len(block))
        if kind == 2:  # drop a statement
            del block[i]
        elif kind == 3:  # duplicate one (a second binding, or twice the same work)
            block.insert(rnd.randrange(len(block) + 1), json.loads(json.dumps(block[i])))
        elif kind == 4:  # swap two (uses before bindings)
            j = rnd.randrange(len(block))
            block[i], block[j] = block[j], block[i]
        elif kind == 5:  # move one into another block (statements where they may not stand)
            s = block.pop(i)
            rnd.choice(lists).insert(0, s)
        elif kind == 6:  # rename the statement
            block[i][0] = rnd.choice(OPS)
        else:  # an argument pushed to a limit, or the arity changed
            s = block[i]
            if len(s) > 1 and rnd.random() < 0.7:
                s[rnd.randrange(1, len(s))] = rnd.choice(ODD_NUMBERS + [None, "x", []])
            elif rnd.random() < 0.5:
                s.append(random_value(rnd, names))
            elif len(s) > 1:
                s.pop()
    return doc


def mutate_text(text, rnd):
    b = bytearray(text.encode("utf-8"))
    kind = rnd.randrange(4)
    if kind == 0 or not b:
        return bytes(b[:rnd.randrange(len(b) + 1)])
    for _ in range(rnd.randint(1, 4)):
        i = rnd.randrange(len(b))
        if kind == 1:
            b[i] = rnd.randrange(256)
        elif kind == 2:
            b[i:i] = rnd.choice([b"[", b"]", b"{", b"}", b",", b":", b'"', b"\\", b"0", b"-",
                                 b"1e9", b".5", b"null", b"\x00", b"\xff", b"\\u0000", b"\\ud800"])
        elif len(b) > 1:
            del b[i]
    return bytes(b)


def make_mutant(src, rnd):
    with open(src, encoding="utf-8") as f:
        text = f.read()
    try:
        doc = json.loads(text)
    except ValueError:  # the corpus's invalid/ files hold some that are not JSON
        doc = None
    if doc is not None and rnd.random() < 0.65:
        doc = mutate_json(doc, rnd)
        text = json.dumps(doc, ensure_ascii=rnd.random() < 0.5)
        data = text.encode("utf-8", "surrogatepass")
        return data if rnd.random() < 0.85 else mutate_text(text, rnd)
    return mutate_text(text, rnd)


# ---- running -------------------------------------------------------------------------

def run_case(runner, path, timeout):
    """Returns (exit status, None) when the runner behaved, or (status, a one-line reason)."""
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:" + os.environ.get("ASAN_OPTIONS", ""))
    try:
        p = subprocess.run([runner, path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout}s"
    err = p.stderr.decode("utf-8", "replace")
    if "Sanitizer" in err or "runtime error:" in err:
        return p.returncode, "sanitizer report: " + next(
            (l for l in err.splitlines() if "ERROR" in l or "runtime error" in l), err.splitlines()[0])
    if p.returncode not in (0, 2):
        return p.returncode, f"exit status {p.returncode}: {err.splitlines()[:1]}"
    if p.returncode == 2 and not err.startswith(path):
        return 2, f"exit 2 without naming the file: {err.splitlines()[:1]}"
    return p.returncode, None


LONE_SURROGATE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])|"
                            rb"(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}")
JANSSON_MAX_DEPTH = 2048


def nesting_depth(data):
    """The deepest nesting of [ and { outside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for c in data:
        if in_string:
            if escaped:
                escaped = False
            elif c == 0x5C:  # backslash
                escaped = True
            elif c == 0x22:
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif c in (0x5D, 0x7D):
            depth -= 1
    return deepest


def parsers_differ(path):
    """Whether Node.js's JSON.parse and jansson knowingly disagree on the file."""
    with open(path, "rb") as f:
        data = f.read()
    return bool(LONE_SURROGATE.search(data)) or nesting_depth(data) > JANSSON_MAX_DEPTH


def runner_refuses(runner, paths):
    """The files `RUNNER --check` refuses."""
    refused = set()
    for i in range(0, len(paths), 200):
        for path in paths[i:i + 200]:
            p = subprocess.run([runner, "--check", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if p.returncode != 0:
                refused.add(path)
    return refused


def oracle_refuses(paths):
    """The files tools/oracle/validate.js refuses."""
    refused = set()
    for i in range(0, len(paths), 200):
        chunk = paths[i:i + 200]
        p = subprocess.run(["node", VALIDATE_JS] + chunk, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        ok = {line.rsplit(": ok", 1)[0] for line in p.stdout.decode("utf-8", "replace").splitlines()}
        refused.update(x for x in chunk if x not in ok)
    return refused


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runner")
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--seed", default="1")
    ap.add_argument("--timeout", type=float, default=20)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--validate", action="store_true")
    ap.add_argument("--keep")
    args = ap.parse_args()

    sources = sorted(f for d in args.dirs for f in glob.glob(os.path.join(d, "**", "*.json"), recursive=True))
    if not sources:
        sys.exit("mutate: no *.json files under " + " ".join(args.dirs))
    rnd = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="vow-mutate.")
    paths = []
    for k in range(args.count):
        path = os.path.join(work, f"m{k}.json")
        with open(path, "wb") as f:
            f.write(make_mutant(rnd.choice(sources), rnd))
        paths.append(path)

    failures = []
    ran = refused = 0
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        for path, (rc, why) in zip(paths, pool.map(lambda p: run_case(args.runner, p, args.timeout), paths)):
            ran += rc == 0
            refused += rc == 2
            if why:
                failures.append((path, why))
    if args.validate:
        mine, theirs = runner_refuses(args.runner, paths), oracle_refuses(paths)
        for path in sorted(p for p in mine ^ theirs if not parsers_differ(p)):
            failures.append((path, "refused by " + ("vow-scenario only" if path in mine else "validate.js only")))

    if failures:
        keep = args.keep or tempfile.mkdtemp(prefix="vow-mutate-failures.")
        os.makedirs(keep, exist_ok=True)
        for path, why in failures:
            shutil.copy(path, keep)
            print(f"FAIL {os.path.join(keep, os.path.basename(path))}: {why}")
    shutil.rmtree(work)
    failed = len({path for path, _ in failures})
    print(f"mutants: {ran} ran (exit 0), {refused} refused (exit 2)")
    print(f"{args.count - failed} passed, {failed} failed (seed {args.seed})")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
