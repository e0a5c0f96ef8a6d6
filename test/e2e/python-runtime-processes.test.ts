import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseConfig, type RowcastConfigInput, type RowcastRuntime, invokeFunction } from '../../src/index.js';
import {
  applyConfig,
  createTestDatabase,
  eventually,
  startTestRowcast,
  type TestDatabase,
} from '../support/database.js';
import { RowcastProcess, writeConfigFile } from '../support/rowcast-process.js';

const directory = path.resolve('test/fixtures/python');

let db: TestDatabase;
let markers: string;
const started: RowcastRuntime[] = [];

const config = (): RowcastConfigInput => ({
  functions: {
    hangs: {
      runtime: 'python3',
      directory,
      handler: 'handlers.hangs_once',
      timeout: '20s',
      maxAttempts: 2,
      minDelay: '50ms',
      maxDelay: '100ms',
      environment: { MARKER_DIR: markers },
    },
    overlap: {
      runtime: 'python3',
      directory,
      handler: 'handlers.counts_overlap',
      concurrency: 2,
      environment: { MARKER_DIR: markers },
    },
  },
});

before(async () => {
  markers = mkdtempSync(path.join(tmpdir(), 'rowcast-markers-'));
  db = await createTestDatabase();
  await applyConfig(db.pool, config());
});

after(async () => {
  for (const r of started) await r.stop();
  await db?.drop();
  rmSync(markers, { recursive: true, force: true });
});

const invocation = async (id: string) =>
  (await db.pool.query('SELECT * FROM rowcast.invocations WHERE id = $1', [id])).rows[0];
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('python3 runtime processes and rowcast processes', () => {
  test('SIGKILL of rowcast mid-invocation: its runtime process dies with it, and the invocation is retried, nothing lost', async () => {
    const file = writeConfigFile(config());
    const victim = RowcastProcess.start(file.file, db.url);
    try {
      await victim.ready(db.pool);
      const id = await invokeFunction(db.pool, 'hangs', { key: 'killed-mid-invocation' });
      const marker = path.join(markers, 'killed-mid-invocation');
      await eventually(
        () => existsSync(marker) && readFileSync(marker, 'utf8').length > 0,
        'the first attempt to be running',
      );
      const runtimePid = Number(readFileSync(marker, 'utf8'));
      victim.kill('SIGKILL');
      await victim.exit(30_000);
      await eventually(() => !alive(runtimePid), 'the runtime process to end with its rowcast');
      // The dead process's lease would run out (timeout + 30 s): let it have run out now.
      await db.pool.query(`UPDATE rowcast.invocations SET available_at = now() WHERE id = $1 AND state = 'in_flight'`, [
        id,
      ]);
      started.push(await startTestRowcast(db.url, {}, parseConfig(config(), 'test config').functions));
      const inv = await eventually(
        async () => ((await invocation(id)).state === 'done' ? invocation(id) : null),
        'the retry to succeed',
        30_000,
      );
      assert.equal(inv.attempts, 2);
      assert.notEqual(JSON.parse(inv.result).pid, runtimePid);
    } finally {
      victim.kill('SIGKILL');
      file.remove();
    }
  });

  test('concurrency (= runtime processes) is never exceeded across two rowcast processes', async () => {
    const functions = parseConfig(config(), 'test config').functions;
    while (started.length < 2) started.push(await startTestRowcast(db.url, {}, functions));
    const ids: string[] = [];
    for (let i = 0; i < 24; i++) ids.push(await invokeFunction(db.pool, 'overlap', { i }));
    const results = await eventually(
      async () => {
        const { rows } = await db.pool.query(
          `SELECT state, result FROM rowcast.invocations WHERE id = ANY ($1::uuid[])`,
          [ids],
        );
        return rows.every((r) => r.state === 'done') && rows.map((r) => JSON.parse(r.result));
      },
      'every invocation to finish',
      60_000,
    );
    assert.equal(results.length, 24);
    const most = Math.max(...results.map((r) => r.seen));
    assert.ok(most <= 2, `at most 2 ran at once over both rowcast processes, saw ${most}`);
    // Once a rowcast process gives the function's slots back, its idle runtime processes stop with them.
    const pids = [...new Set(results.map((r) => r.pid as number))];
    await eventually(() => pids.every((pid) => !alive(pid)), 'the idle runtime processes to stop with their slots');
  });
});
