import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import pg from 'pg';
import { migrate } from '../../src/store/migrate.js';
import { createPool, type Pool } from '../../src/store/pool.js';
import { ROUTE_LOCK } from '../../src/routing/route-events.js';
import { assertDeliveries } from '../support/checker.js';
import { eventually } from '../support/database.js';
import { databaseUrlFor } from '../support/database-url.js';
import {
  committedIds,
  explained,
  FaultScenario,
  reportResult,
  type RestartablePostgres,
  sleep,
  startRestartablePostgres,
  stopChild,
  waitAllDelivered,
  Writer,
} from '../support/fault-harness.js';

const run = promisify(execFile);

/** The data directory's filesystem; the WAL lives elsewhere (see the test's name). */
const DISK_MB = 96;
/** How long the disk stays full. */
const FULL_MS = 15_000;

async function tmpfsUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (mount -t tmpfs)';
  for (const tool of ['mount', 'umount']) {
    if (
      !(await run(tool, ['--version']).then(
        () => true,
        () => false,
      ))
    )
      return `\`${tool}\` is not installed`;
  }
  const probe = mkdtempSync(path.join(tmpdir(), 'rowcast-faults-probe-'));
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe]);
    await run('umount', [probe]);
    return undefined;
  } catch (err) {
    return `\`mount -t tmpfs\` failed: ${(err as Error).message.trim()}`;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

/** Writes zeros to `file` until the filesystem has no byte left; returns how many bytes that took. */
function fillUp(file: string, limitBytes: number): number {
  const chunk = Buffer.alloc(1 << 20);
  const fd = openSync(file, 'w');
  let written = 0;
  try {
    for (let i = 0; i < Math.ceil(limitBytes / chunk.length) + 16; i++) {
      try {
        written += writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC') return written;
        throw err;
      }
    }
    throw new Error(`fillUp: wrote ${written} bytes without filling the filesystem`);
  } finally {
    closeSync(fd);
  }
}

const skip = await tmpfsUnavailable();
const scenario = new FaultScenario();
const mountPoint = skip ? '' : mkdtempSync(path.join(tmpdir(), 'rowcast-faults-disk-'));
const walDir = path.join(tmpdir(), `rowcast-faults-wal-${process.pid}-${randomBytes(4).toString('hex')}`);
const filler = path.join(mountPoint, 'filler');
let mounted = false;
let server: RestartablePostgres | undefined;
let pool: Pool | undefined;
let writer: Writer | undefined;
let routeLock: pg.Client | undefined;

after(async () => {
  // Space first, so that PostgreSQL can stop cleanly (its shutdown checkpoint writes).
  if (mounted) rmSync(filler, { force: true });
  await writer?.stop();
  await routeLock?.end().catch(() => {});
  await scenario.cleanup();
  await pool?.end().catch(() => {});
  await server?.stop();
  if (mounted) await run('umount', [mountPoint]).catch(() => run('umount', ['-l', mountPoint]));
  if (mountPoint) rmSync(mountPoint, { recursive: true, force: true });
  rmSync(walDir, { recursive: true, force: true });
});

test(
  "PostgreSQL's data directory (WAL kept elsewhere) fills up while writers insert and rowcast routes a backlog: writers fail, rowcast logs the cause and retries without dying, and once space is freed everything committed arrives",
  { timeout: 240_000, skip: skip ?? false },
  () =>
    explained(scenario.children, async () => {
      await run('mount', ['-t', 'tmpfs', '-o', `size=${DISK_MB}m,mode=0755`, 'tmpfs', mountPoint]);
      mounted = true;
      // A full pg_wal is a PANIC (PostgreSQL stops), which 01-postgres-restart covers from rowcast's side; a full data
      // directory leaves the server up and fails every statement that needs a new page.
      server = await startRestartablePostgres({
        dataDir: path.join(mountPoint, 'data'),
        initdbFlags: [`--waldir=${walDir}`],
      });
      const admin = new pg.Client({ connectionString: server.url });
      await admin.connect();
      await admin.query('CREATE DATABASE rowcast_fault');
      await admin.end();
      const url = databaseUrlFor(server.url, 'rowcast_fault');
      pool = createPool(url, { max: 3, applicationName: 'rowcast test' });
      await migrate(pool);
      const { receiver, child } = await scenario.start(pool, url);
      writer = new Writer(url, 10);
      await eventually(() => receiver.delivered.length >= 20, 'deliveries before the disk fills', 30_000);

      // Routing waits (its lock held here) while events pile up, so that the backlog needs new pages once the disk is full.
      routeLock = new pg.Client({ connectionString: url, application_name: 'rowcast test route lock' });
      await routeLock.connect();
      await routeLock.query('SELECT pg_advisory_lock($1)', [ROUTE_LOCK]);
      const unrouted = async () =>
        Number((await pool!.query(`SELECT count(*) FROM rowcast.unrouted_events()`)).rows[0].count);
      await eventually(async () => (await unrouted()) >= 300, 'a backlog of 300 unrouted events', 60_000);

      const failedBefore = writer.failed;
      const fillerBytes = fillUp(filler, DISK_MB << 20);
      const fullAt = Date.now();
      await eventually(() => writer!.failed > failedBefore, 'a writer to fail on the full disk', 60_000);
      const backlog = await unrouted();
      await routeLock.query('SELECT pg_advisory_unlock($1)', [ROUTE_LOCK]);

      // rowcast names the cause, and goes on trying rather than dying.
      const noSpaceLines = () => child.output.split('\n').filter((line) => line.includes('No space left on device'));
      await eventually(
        () => noSpaceLines().length >= 2,
        'rowcast to log "No space left on device" twice (a failure, then a retry that failed too)',
        60_000,
      );
      const logged = JSON.parse(noSpaceLines()[0]!) as { level: number; msg: string; err?: string };
      assert.ok(logged.level >= 40, `the failure is logged as a warning or an error: ${noSpaceLines()[0]}`);
      await sleep(Math.max(0, FULL_MS - (Date.now() - fullAt)));
      assert.ok(child.running, 'rowcast is still running on a full disk');
      assert.equal((await pool.query('SELECT 1 AS one')).rows[0].one, 1, 'PostgreSQL is still up (its WAL had room)');
      const routedWhileFull = backlog - (await unrouted());
      const failedWhileFull = writer.failed - failedBefore;
      const noSpaceLinesWhileFull = noSpaceLines().length;

      rmSync(filler);
      const freedAt = Date.now();
      const before = Math.max(0, ...(await committedIds(pool)));
      const firstNew = await eventually(
        () => receiver.delivered.find((r) => Number(r.json?.body?.after?.id) > before),
        'a row committed after the space was freed to be delivered',
        60_000,
      );
      await writer.stop();
      const ids = await waitAllDelivered(
        pool,
        receiver,
        'every committed row to be delivered once space was freed',
        90_000,
      );
      const result = assertDeliveries({ committed: ids, requests: receiver.requests });
      const allDeliveredAfterFreeMs = Date.now() - freedAt;
      const exit = await stopChild(child);
      assert.deepEqual(exit, { code: 0, signal: null }, 'rowcast stops on SIGTERM after the disk was full (no hang)');
      reportResult('postgres-out-of-disk', {
        diskMb: DISK_MB,
        fillerMb: Math.round(fillerBytes / (1 << 20)),
        backlogAtFull: backlog,
        routedWhileFull,
        writesFailedWhileFull: failedWhileFull,
        fullForMs: freedAt - fullAt,
        noSpaceLogLinesWhileFull: noSpaceLinesWhileFull,
        firstLogLine: `${logged.msg}: ${logged.err ?? ''}`,
        firstNewDeliveryAfterFreeMs: firstNew.at - freedAt,
        allDeliveredAfterFreeMs,
        writesAttempted: writer.attempted,
        writesFailed: writer.failed,
        committed: result.committed,
        delivered: result.delivered,
        duplicates: result.duplicates,
        requests: result.requests,
      });
    }),
);
