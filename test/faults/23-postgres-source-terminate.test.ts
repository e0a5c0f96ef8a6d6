import { startEmbeddedPostgres } from '../../src/store/embedded-postgres.js';
import { sleep } from '../support/fault-harness.js';
import { sourceFaultTest } from '../support/postgres-source-fault.js';

/*
 * the source's walsender terminated (pg_terminate_backend on the source) repeatedly while rows stream: everything delivered. The items table is on a second PostgreSQL read by logical replication (a source); the store is elsewhere.
 * The checker: every committed row delivered, copies only under the same webhook-id.
 */

sourceFaultTest({
  title:
    'the source walsender terminated (pg_terminate_backend on the source) repeatedly while rows stream: everything delivered.',
  result: '23-postgres-source-terminate',
  server: () => startEmbeddedPostgres(),
  survives: true,
  async inject(s) {
    const faults: number[] = [];
    for (let round = 0; round < 4; round++) {
      await sleep(1500);
      const { rows } = await s.source.query<{ n: number }>(
        `SELECT count(*) FILTER (WHERE pg_terminate_backend(active_pid))::int AS n FROM pg_replication_slots WHERE slot_name = 'rowcast_shop' AND active_pid IS NOT NULL`,
      );
      faults.push(rows[0]!.n);
    }
    return faults;
  },
});
