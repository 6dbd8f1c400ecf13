'use strict';
// The canonical layout of scenario files: one statement a line, nested statement lists indented.
//
//   node tools/oracle/format.js FILE.json...   rewrites each file in place (its meaning is kept)
//
// As a module: formatScenario(doc) -> text (ends with a newline).

const WIDTH = 100;

function compact(v) {
  if (Array.isArray(v)) return `[${v.map(compact).join(', ')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).map((k) => `${JSON.stringify(k)}: ${compact(v[k])}`).join(', ')}}`;
  }
  return JSON.stringify(v);
}

function isStatementList(v) {
  return Array.isArray(v) && v.length > 0 && v.every((s) => Array.isArray(s) && typeof s[0] === 'string');
}

function fmt(v, ind) {
  const c = compact(v);
  if (ind.length + c.length <= WIDTH) return c;
  if (isStatementList(v)) {
    const ind2 = ind + '  ';
    return `[\n${v.map((s) => ind2 + fmt(s, ind2)).join(',\n')}\n${ind}]`;
  }
  if (Array.isArray(v)) return `[${v.map((x) => fmt(x, ind)).join(', ')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).map((k) => `${JSON.stringify(k)}: ${fmt(v[k], ind)}`).join(', ')}}`;
  }
  return c;
}

function formatScenario(doc) {
  const keys = Object.keys(doc).sort((a, b) => (a === 'name' ? -1 : b === 'name' ? 1 : 0));
  const parts = keys.map((k) => {
    if (k === 'program' && Array.isArray(doc.program)) {
      const body = doc.program.map((s) => `    ${fmt(s, '    ')}`).join(',\n');
      return `  "program": [${doc.program.length ? `\n${body}\n  ` : ''}]`;
    }
    return `  ${JSON.stringify(k)}: ${compact(doc[k])}`;
  });
  return `{\n${parts.join(',\n')}\n}\n`;
}

module.exports = { formatScenario };

if (require.main === module) {
  const fs = require('fs');
  for (const f of process.argv.slice(2)) {
    const doc = JSON.parse(fs.readFileSync(f, 'utf8'));
    fs.writeFileSync(f, formatScenario(doc));
  }
}
