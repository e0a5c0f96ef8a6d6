import { sleep, startRestartablePostgres } from '../support/fault-harness.js';
import { sourceFaultTest } from '../support/postgres-source-fault.js';

/*
 * PostgreSQL source restarted (immediate) twice while rows stream: everything delivered. The items table is on a second PostgreSQL read by logical replication (a source); the store is elsewhere.
 * The checker: every committed row delivered, copies only under the same webhook-id.
 */

sourceFaultTest({
  title: 'PostgreSQL source restarted (immediate) twice while rows stream: everything delivered.',
  result: '21-postgres-source-restart',
  server: () => startRestartablePostgres(),
  survives: true,
  async inject(_s, server) {
    const faults: number[] = [];
    for (let round = 0; round < 2; round++) {
      await sleep(1500);
      faults.push((await server.restartImmediate()).downMs);
    }
    return faults;
  },
});
