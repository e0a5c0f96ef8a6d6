// Measures src/'s import graph: files over 400 lines, file cycles, folder cycles, cross-folder imports per folder.
// Run: node scripts/import-graph.mjs   (add --verbose to list the cycles' members)
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve('src');
const verbose = process.argv.includes('--verbose');
const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (name.endsWith('.ts')) files.push(path);
  }
})(root);

const rel = (path) => relative(root, path);
// A file's folder: its first path segment under src/ ('.' for src/index.ts).
const folderOf = (path) => (rel(path).includes('/') ? rel(path).split('/')[0] : '.');
const edges = new Map();
for (const file of files) {
  const text = readFileSync(file, 'utf8');
  const targets = new Set();
  // Static imports and re-exports, including `import type` (a type-only cycle is still a cycle of concepts).
  for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"](\.[^'"]+)['"]/g)) {
    const target = resolve(dirname(file), match[1].replace(/\.js$/, '.ts'));
    if (files.includes(target)) targets.add(target);
  }
  for (const match of text.matchAll(/import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) {
    const target = resolve(dirname(file), match[1].replace(/\.js$/, '.ts'));
    if (files.includes(target)) targets.add(target);
  }
  edges.set(file, targets);
}

// Tarjan's strongly connected components.
function components(nodes, next) {
  let index = 0;
  const stack = [];
  const info = new Map();
  const result = [];
  function visit(node) {
    info.set(node, { index, low: index, onStack: true });
    index++;
    stack.push(node);
    for (const target of next(node)) {
      if (!info.has(target)) {
        visit(target);
        info.get(node).low = Math.min(info.get(node).low, info.get(target).low);
      } else if (info.get(target).onStack) info.get(node).low = Math.min(info.get(node).low, info.get(target).index);
    }
    if (info.get(node).low === info.get(node).index) {
      const component = [];
      let member;
      do {
        member = stack.pop();
        info.get(member).onStack = false;
        component.push(member);
      } while (member !== node);
      if (component.length > 1) result.push(component);
    }
  }
  for (const node of nodes) if (!info.has(node)) visit(node);
  return result;
}

const long = files
  .map((file) => [rel(file), readFileSync(file, 'utf8').split('\n').length - 1])
  .filter(([, lines]) => lines > 400)
  .sort((a, b) => b[1] - a[1]);
console.log(
  `files over 400 lines: ${long.length}${long.length ? ' — ' + long.map(([f, n]) => `${f} ${n}`).join(', ') : ''}`,
);

const fileCycles = components(files, (file) => edges.get(file));
console.log(`file cycles: ${fileCycles.length} (${fileCycles.reduce((n, c) => n + c.length, 0)} files)`);
if (verbose) for (const cycle of fileCycles) console.log('  ' + cycle.map(rel).join(' ↔ '));

const folderEdges = new Map();
const crossOut = new Map();
const crossIn = new Map();
for (const [file, targets] of edges) {
  const from = folderOf(file);
  for (const target of targets) {
    const to = folderOf(target);
    if (from === to) continue;
    if (!folderEdges.has(from)) folderEdges.set(from, new Set());
    folderEdges.get(from).add(to);
    crossOut.set(from, (crossOut.get(from) ?? 0) + 1);
    crossIn.set(to, (crossIn.get(to) ?? 0) + 1);
  }
}
const folders = [...new Set(files.map(folderOf))].sort();
const folderCycles = components(folders, (folder) => folderEdges.get(folder) ?? []);
console.log(`folder cycles: ${folderCycles.length}${folderCycles.map((c) => ' — ' + c.sort().join(', ')).join('')}`);
console.log('cross-folder imports per folder (out / in; out-targets):');
for (const folder of folders) {
  const targets = [...(folderEdges.get(folder) ?? [])].sort().join(' ');
  console.log(
    `  ${folder.padEnd(16)} ${String(crossOut.get(folder) ?? 0).padStart(4)} / ${String(crossIn.get(folder) ?? 0).padEnd(4)} → ${targets}`,
  );
}
