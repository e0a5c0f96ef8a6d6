import { startEmbeddedPostgres } from '../../src/store/embedded-postgres.js';
import { sleep } from '../support/fault-harness.js';
import { sourceFaultTest } from '../support/postgres-source-fault.js';

/*
 * rowcast SIGKILLed three times while a PostgreSQL source streams: everything delivered. The items table is on a second PostgreSQL read by logical replication (a source); the store is elsewhere.
 * The checker: every committed row delivered, copies only under the same webhook-id.
 */

sourceFaultTest({
  title: 'rowcast SIGKILLed three times while a PostgreSQL source streams: everything delivered.',
  result: '22-postgres-source-kill',
  server: () => startEmbeddedPostgres(),
  survives: false,
  async inject(s) {
    let child = s.child;
    const faults: number[] = [];
    for (let round = 0; round < 3; round++) {
      await sleep(1500);
      child.kill('SIGKILL');
      await child.exited;
      faults.push(round);
      child = await s.spawn();
    }
    return faults;
  },
});
