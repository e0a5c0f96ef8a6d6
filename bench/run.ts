/**
 * npm run bench: rowcast against its baselines in one run on the same PostgreSQL (issue 6); see bench/README.md.
 *   npm run bench                         the full suite (writes bench/results/latest.json)
 *   npm run bench -- --quick              a short smoke run of the same code (bench/results/quick.json)
 *   npm run bench -- --only drain,memory  some scenarios (capture, latency, drain, sustained, memory, sources, backfill, scale)
 *   npm run bench -- --reps 5             repetitions of the short scenarios (capture overhead, drains; 1M-event drains run once)
 *   npm run bench -- --cpu-prof           CPU profiles of the rowcast processes in bench/results/profiles/
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { backfill } from './scenarios/backfill.js';
import { captureOverhead } from './scenarios/capture-overhead.js';
import { drain } from './scenarios/drain.js';
import { latency } from './scenarios/latency.js';
import { memory } from './scenarios/memory.js';
import { sources } from './scenarios/sources.js';
import { scale } from './scenarios/scale.js';
import { sustained } from './scenarios/sustained.js';
import { type BenchContext, FULL, type Profile, QUICK, type Scenario } from './support/context.js';
import { startBenchServer } from './support/postgres.js';
import { Recorder } from './support/recorder.js';
import { writeCpuProfilesTo } from './support/bench-rowcast.js';
import { formatTable, machine, Results } from './support/report.js';

const SCENARIOS: Scenario[] = [captureOverhead, latency, drain, sustained, memory, sources, backfill, scale];
const USAGE = `usage: npm run bench -- [--quick] [--only ${SCENARIOS.map((s) => s.id).join(',')}] [--reps N] [--out file.json] [--cpu-prof]`;

function fail(message: string): never {
  console.error(`bench: ${message}\n${USAGE}`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      reps: { type: 'string' },
      out: { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  }).values;
} catch (err) {
  fail((err as Error).message);
}
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
const profile: Profile = { ...(args.quick ? QUICK : FULL) };
if (args.reps !== undefined) {
  const reps = Number(args.reps);
  if (!Number.isInteger(reps) || reps < 1 || reps > 20)
    fail(`--reps must be a whole number from 1 to 20, not "${args.reps}"`);
  profile.reps = reps;
  profile.drain = { ...profile.drain, reps };
}
const only = args.only
  ?.split(',')
  .map((s) => s.trim())
  .filter(Boolean);
for (const id of only ?? [])
  if (!SCENARIOS.some((s) => s.id === id))
    fail(`unknown scenario "${id}"; choose from ${SCENARIOS.map((s) => s.id).join(', ')}`);
const selected = only ? SCENARIOS.filter((s) => only.includes(s.id)) : SCENARIOS;
const complete = !args.quick && !only;
const resultsDir = fileURLToPath(new URL('./results/', import.meta.url));
const out = path.resolve(args.out ?? path.join(resultsDir, complete ? 'latest.json' : 'quick.json'));

const cpuProfileDir = args['cpu-prof'] ? path.join(resultsDir, 'profiles') : undefined;
if (cpuProfileDir) {
  mkdirSync(cpuProfileDir, { recursive: true });
  writeCpuProfilesTo(cpuProfileDir);
}

const began = Date.now();
const elapsed = () => {
  const s = Math.round((Date.now() - began) / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
};
const log = (line: string) => console.log(`[${elapsed()}] ${line}`);

const results = new Results();
const failures: Array<{ scenario: string; error: string }> = [];
/** Seconds each scenario took: where the run's time goes (bench/README.md says how long a full run takes). */
const scenarioSeconds: Record<string, number> = {};
log(
  `rowcast bench (${profile.name}): ${selected.map((s) => s.id).join(', ')}; ${profile.reps} repetition(s) of capture overhead, ${profile.drain.reps} of each drain`,
);
const server = await startBenchServer(log);
log(
  `PostgreSQL ${server.settings.server_version} (${server.embedded ? 'embedded' : 'DATABASE_URL'}), fsync=${server.settings.fsync}, synchronous_commit=${server.settings.synchronous_commit}`,
);
const receiver = await Recorder.start(new URL('./support/receiver-main.ts', import.meta.url));
const ctx: BenchContext = { server, profile, results, receiver, log };
let interrupted = false;
process.once('SIGINT', () => {
  interrupted = true;
  log('interrupted: finishing the current step, then cleaning up (Ctrl-C again to abort at once)');
  process.once('SIGINT', () => process.exit(130));
});
try {
  for (const scenario of selected) {
    if (interrupted) break;
    log(`── ${scenario.title}`);
    const started = Date.now();
    try {
      await scenario.run(ctx);
    } catch (err) {
      // One broken scenario must not cost the others' figures; it is reported and fails the run.
      const error = (err as Error).stack ?? String(err);
      failures.push({ scenario: scenario.id, error });
      log(`${scenario.id} failed: ${error}`);
    }
    scenarioSeconds[scenario.id] = Math.round((Date.now() - started) / 1000);
  }
} finally {
  await receiver.close();
  await server.stop();
}

const report = {
  date: new Date(began).toISOString(),
  durationSeconds: Math.round((Date.now() - began) / 1000),
  profile: profile.name,
  scenarios: selected.map((s) => s.id),
  scenarioSeconds,
  machine: machine(),
  postgres: { ...server.settings, source: server.embedded ? 'embedded' : 'DATABASE_URL' },
  settings: profile,
  measurements: results.measurements,
  failures,
};
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
const m = machine();
const what = complete ? 'full run' : `${profile.name} run (${selected.map((s) => s.id).join(', ')})`;
console.log(
  `\n${what} of ${report.date.slice(0, 16).replace('T', ' ')} UTC, ${m.cpus} × ${m.cpuModel}, ${m.memoryGb} GB, PostgreSQL ${server.settings.server_version}, fsync ${server.settings.fsync}, synchronous_commit ${server.settings.synchronous_commit}; ${report.durationSeconds} s (${Object.entries(
    scenarioSeconds,
  )
    .map(([id, sec]) => `${id} ${sec} s`)
    .join(', ')})\n`,
);
console.log(formatTable(results));
const targets = results.measurements.filter((x) => x.target);
console.log(
  `\ntargets met: ${targets.filter((x) => x.target!.met).length} of ${targets.length}${
    targets.some((x) => !x.target!.met)
      ? ` (not met: ${targets
          .filter((x) => !x.target!.met)
          .map((x) => x.name)
          .join('; ')})`
      : ''
  }`,
);
console.log(`\nresults: ${path.relative(process.cwd(), out)}`);
if (cpuProfileDir) console.log(`CPU profiles of the rowcast processes: ${path.relative(process.cwd(), cpuProfileDir)}`);
if (failures.length) {
  console.error(`\n${failures.length} scenario(s) failed: ${failures.map((f) => f.scenario).join(', ')}`);
  process.exit(1);
}
