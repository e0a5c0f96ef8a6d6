// Prints the functions with the most self time in a .cpuprofile (node --cpu-prof): node bench/probes/top-profile.mjs file [n]
import { readFileSync } from 'node:fs';

const profile = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const n = Number(process.argv[3] ?? 30);
const self = new Map();
const dt = profile.timeDeltas;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const hits = new Map();
profile.samples.forEach((id, i) => hits.set(id, (hits.get(id) ?? 0) + (dt[i] ?? 0)));
let total = 0;
for (const [id, us] of hits) {
  const { callFrame: f } = byId.get(id);
  const key = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
  self.set(key, (self.get(key) ?? 0) + us);
  total += us;
}
for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, n))
  console.log(`${((100 * us) / total).toFixed(1).padStart(5)}%  ${key}`);
