#!/usr/bin/env node
// Drops optional dependencies that have no entry in package-lock.json.
// Why: `npm install` silently skips optional platform packages the registry cannot serve (e.g. a mirror without
// the macOS/Windows builds of node-llama-cpp), but `npm ci` then refuses the lock ("Missing: X from lock file").
// Run after every `npm install` that rewrites the lock: `node scripts/fix-lockfile.mjs package-lock.json`.
import fs from 'node:fs';
const file = process.argv[2];
const lock = JSON.parse(fs.readFileSync(file, 'utf8'));
const pk = lock.packages;
let n = 0;
for (const [p, e] of Object.entries(pk)) {
  if (!e.optionalDependencies) continue;
  for (const name of Object.keys(e.optionalDependencies)) {
    // resolve like node: nested first, then up the tree
    let base = p, found = false;
    while (true) {
      const cand = (base ? base + '/' : '') + 'node_modules/' + name;
      if (pk[cand]) { found = true; break; }
      if (!base) break;
      const i = base.lastIndexOf('node_modules/');
      base = i <= 0 ? '' : base.slice(0, i - 1);
    }
    if (!found) { delete e.optionalDependencies[name]; n++; }
  }
}
fs.writeFileSync(file, JSON.stringify(lock, null, 2) + '\n');
console.log('removed', n);
