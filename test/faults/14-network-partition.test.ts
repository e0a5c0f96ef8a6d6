import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import pg from 'pg';
import type { RowcastConfigInput } from '../../src/config/schema.js';
import { freePort } from '../../src/store/embedded-postgres.js';
import { migrate } from '../../src/store/migrate.js';
import { createPool, type Pool } from '../../src/store/pool.js';
import { assertDeliveries } from '../support/checker.js';
import { eventually } from '../support/database.js';
import { databaseUrlFor } from '../support/database-url.js';
import {
  committedIds,
  explained,
  FaultScenario,
  ITEMS_TABLE,
  reportResult,
  type RestartablePostgres,
  sleep,
  startRestartablePostgres,
  stopChild,
  waitAllDelivered,
  Writer,
} from '../support/fault-harness.js';
import { NetworkNamespace, networkNamespacesUnavailable } from '../support/network-namespace.js';
import { RowcastProcess } from '../support/rowcast-process.js';
import type { WebhookReceiver } from '../support/webhook-receiver.js';

/** How long each partition lasts (issue 14 §8: 30 s). */
const CUT_MS = 30_000;
/** After a heal, rowcast must be ready and delivering again within this (TCP retransmission backs off to ~25 s). */
const RECOVERY_MS = 90_000;

const skip = await networkNamespacesUnavailable();
let ns: NetworkNamespace | undefined;
let server: RestartablePostgres | undefined;
let pool: Pool | undefined;
let writer: Writer | undefined;
const scenario = new FaultScenario();

after(async () => {
  await writer?.stop();
  await scenario.cleanup();
  await pool?.end().catch(() => {});
  await server?.stop();
  await ns?.remove();
});

interface Readiness {
  status: number;
  database?: unknown;
  at: number;
}

async function readyz(url: string): Promise<Readiness> {
  const at = Date.now();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
    const body = (await res.json()) as { checks?: { database?: unknown } };
    return { status: res.status, database: body.checks?.database, at };
  } catch (err) {
    return { status: 0, database: `no answer: ${(err as Error).message}`, at };
  }
}

/** The first row committed after now; resolves with how long after `since` a 2xx for a row past it came. */
async function deliveryOfANewRow(receiver: WebhookReceiver, since: number, what: string): Promise<number> {
  const before = Math.max(0, ...(await committedIds(pool!)));
  const r = await eventually(
    () => receiver.delivered.find((x) => Number(x.json?.body?.after?.id) > before),
    what,
    RECOVERY_MS,
  );
  return r.at - since;
}

test(
  'network partitions of 30 s (blackholed both ways) between rowcast and PostgreSQL, then rowcast and its subscriber: /readyz says not ready while the database is unreachable, nothing lost or duplicated under another id, no hang after healing',
  { timeout: 300_000, skip: skip ?? false },
  () =>
    explained(scenario.children, async () => {
      // rowcast runs in a namespace of its own, PostgreSQL and the subscriber in the host's: one veth pair to each, so
      // that either can be cut alone. The test's writers and checks reach PostgreSQL over loopback, which stays up.
      ns = await NetworkNamespace.create();
      const dbLink = await ns.addLink('db', 0);
      const hookLink = await ns.addLink('hook', 1);
      server = await startRestartablePostgres({
        listenAddresses: [dbLink.hostAddress],
        allowNetworks: [`${dbLink.address}/32`],
      });
      const admin = new pg.Client({ connectionString: server.url });
      await admin.connect();
      await admin.query('CREATE DATABASE rowcast_fault');
      await admin.end();
      const url = databaseUrlFor(server.url, 'rowcast_fault');
      pool = createPool(url, { max: 3, applicationName: 'rowcast test' });
      await migrate(pool);
      await pool.query(ITEMS_TABLE);

      const receiver = await scenario.addReceiver({ host: hookLink.hostAddress });
      const port = await freePort();
      const config = {
        topics: { items: {} },
        captures: { items: { table: 'items', topic: 'items' } },
        subscriptions: {
          // Every attempt in the partition takes the whole timeout (nothing answers, nothing refuses): enough attempts
          // to outlast 30 s, so that the partition costs retries, not dead letters.
          items: {
            topic: 'items',
            protocol: 'http',
            endpoint: receiver.url,
            deliveryPolicy: { minDelay: '100ms', maxDelay: '2s', timeout: '2s', maxAttempts: 40 },
          },
        },
        // On every address of the test's own namespace (the host reaches /readyz over the veth), without a token: a
        // non-loopback server without one must say so (allowUnauthenticated).
        runtime: {
          lease: '2s',
          pollInterval: '300ms',
          shutdownGrace: '1s',
          http: { port, host: '0.0.0.0', allowUnauthenticated: true },
        },
      } as RowcastConfigInput;
      await scenario.useConfig(pool, config);
      const nsUrl = new URL(url);
      nsUrl.hostname = dbLink.hostAddress;
      const child = RowcastProcess.start(scenario.configFile!.file, nsUrl.toString(), { prefix: ns.wrap([]) });
      scenario.children.push(child);
      await child.ready(pool, 90_000);
      // /readyz over whichever link is not cut.
      const readyzVia = (link: { address: string }) => `http://${link.address}:${port}/readyz`;
      await eventually(async () => (await readyz(readyzVia(hookLink))).status === 200, '/readyz to answer 200', 30_000);

      writer = new Writer(url, 20);
      await eventually(() => receiver.delivered.length >= 20, 'deliveries before the partitions', 30_000);

      // (1) rowcast ⟷ PostgreSQL.
      await ns.cut('db');
      const dbCutAt = Date.now();
      const duringDbCut: Readiness[] = [];
      for (let i = 0; i < 1000 && Date.now() - dbCutAt < CUT_MS; i++) {
        const r = await readyz(readyzVia(hookLink));
        if (Date.now() - dbCutAt < CUT_MS) duringDbCut.push(r);
        await sleep(250);
      }
      await sleep(Math.max(0, CUT_MS - (Date.now() - dbCutAt)));
      const receivedDuringDbCut = receiver.delivered.filter((r) => r.at > dbCutAt).length;
      await ns.heal('db');
      const dbHealedAt = Date.now();
      assert.ok(duringDbCut.length > 0, '/readyz was polled during the partition');
      const readyDuringCut = duringDbCut.filter((r) => r.status !== 503 || r.database === true);
      assert.deepEqual(
        readyDuringCut,
        [],
        '/readyz answers 503 with the database check failing for as long as the database is unreachable',
      );
      const [readyAfterDbHealMs, deliveryAfterDbHealMs] = await Promise.all([
        eventually(
          async () => (await readyz(readyzVia(hookLink))).status === 200,
          '/readyz to say ready again after the database partition healed',
          RECOVERY_MS,
        ).then(() => Date.now() - dbHealedAt),
        deliveryOfANewRow(receiver, dbHealedAt, 'a row committed after the database partition healed to be delivered'),
      ]);

      // (2) rowcast ⟷ subscriber; the database stays reachable, so rowcast stays ready.
      await ns.cut('hook');
      const hookCutAt = Date.now();
      await sleep(CUT_MS / 2);
      const readyDuringHookCut = await readyz(readyzVia(dbLink));
      await sleep(Math.max(0, CUT_MS - (Date.now() - hookCutAt)));
      // A figure, showing the cut holds: requests read after its first second (one that got in before may be read late).
      const receivedDuringHookCut = receiver.requests.filter(
        (r) => r.at > hookCutAt + 1000 && r.at < Date.now(),
      ).length;
      await ns.heal('hook');
      const hookHealedAt = Date.now();
      assert.equal(
        readyDuringHookCut.status,
        200,
        `/readyz stays ready while only a subscriber is unreachable (${JSON.stringify(readyDuringHookCut)})`,
      );
      const deliveryAfterHookHealMs = await deliveryOfANewRow(
        receiver,
        hookHealedAt,
        'a row committed after the subscriber partition healed to be delivered',
      );

      await writer.stop();
      const t0 = Date.now();
      const ids = await waitAllDelivered(
        pool,
        receiver,
        'every committed row to be delivered after both partitions',
        120_000,
      );
      const result = assertDeliveries({ committed: ids, requests: receiver.requests });
      const catchUpMs = Date.now() - t0;
      assert.ok(child.running, 'rowcast survived both partitions');
      const exit = await stopChild(child);
      assert.deepEqual(exit, { code: 0, signal: null }, 'rowcast stops on SIGTERM after the partitions (no hang)');
      const notReady = duringDbCut.filter((r) => r.status === 503);
      reportResult('network-partition', {
        cutMs: CUT_MS,
        readyzPollsDuringDbCut: duringDbCut.length,
        readyz503DuringDbCut: notReady.length,
        firstNotReadyAfterCutMs: notReady.length ? notReady[0]!.at - dbCutAt : null,
        deliveredDuringDbCut: receivedDuringDbCut,
        readyAfterDbHealMs,
        deliveryAfterDbHealMs,
        requestsReachingSubscriberDuringHookCut: receivedDuringHookCut,
        deliveryAfterHookHealMs,
        writesAttempted: writer.attempted,
        writesFailed: writer.failed,
        committed: result.committed,
        delivered: result.delivered,
        duplicates: result.duplicates,
        requests: result.requests,
        catchUpAfterWritersStoppedMs: catchUpMs,
      });
    }),
);
