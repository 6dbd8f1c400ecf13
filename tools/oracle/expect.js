'use strict';
// (Re)writes the .expected file of hand-written cases from the oracle.
//
//   node tools/oracle/expect.js [--check] FILE.json...
//
// For each file: its "name" must equal the file name without .json; it must follow FORMAT's
// timer rules made robust against lag along timer chains (oracle.js --timing --gap 20
// --hop-lag 10, see timing.js); it is run twice under the oracle and both outputs must be
// identical. Then FILE.expected is written (with --check: only compared, not written).
// Exit 1 when any file has a problem (its .expected is then left alone).

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');

const ORACLE = path.join(__dirname, 'oracle.js');

function run(args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [ORACLE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => err.push(b));
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
  });
}

async function one(file, check) {
  const base = path.basename(file, '.json');
  let doc;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    return `${file}: ${e.message}`;
  }
  if (doc.name !== base) return `${file}: "name" is ${JSON.stringify(doc.name)}, expected "${base}"`;
  const timing = await run(['--timing', '--gap', '20', '--hop-lag', '10', file]);
  if (timing.code !== 0) return (timing.stderr + timing.stdout).trim();
  const a = await run([file]);
  const b = await run([file]);
  if (a.code !== 0) return a.stderr.trim();
  if (a.stdout !== b.stdout) return `${file}: two runs printed different output`;
  const exp = file.replace(/\.json$/, '.expected');
  if (check) {
    const old = fs.existsSync(exp) ? fs.readFileSync(exp, 'utf8') : null;
    if (old !== a.stdout) return `${file}: ${path.basename(exp)} is ${old === null ? 'missing' : 'out of date'}`;
  } else {
    fs.writeFileSync(exp, a.stdout);
  }
  return null;
}

async function main() {
  const argv = process.argv.slice(2);
  const check = argv[0] === '--check';
  const files = check ? argv.slice(1) : argv;
  if (!files.length) {
    process.stderr.write('usage: node tools/oracle/expect.js [--check] FILE.json...\n');
    process.exit(2);
  }
  let next = 0;
  const problems = [];
  const worker = async () => {
    while (next < files.length) {
      const f = files[next++];
      const p = await one(f, check);
      if (p) problems.push(p);
    }
  };
  // Two runs per CPU: many more make Node's timers late enough to reorder (see timing.js).
  await Promise.all(Array.from({ length: Math.min(files.length, os.cpus().length * 2) }, worker));
  for (const p of problems.sort()) process.stderr.write(`${p}\n`);
  process.stderr.write(`expect: ${files.length - problems.length} ok, ${problems.length} with problems\n`);
  process.exit(problems.length ? 1 : 0);
}

main();
