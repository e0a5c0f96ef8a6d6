/**
 * The reference scenario (AWS blog: table trigger → Lambda → SNS topic → subscriptions), on rowcast:
 * captures customer_business_events into topic my-rds-triggered-topic-1, delivers it to a signed webhook that
 * this script serves on loopback, inserts the document's rows and prints each notification as it arrives.
 *
 *   npm run demo               uses DATABASE_URL, or an embedded PostgreSQL when it is not set
 *   npm run demo -- --follow   keeps running: change rows from psql and watch the notifications
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { Webhook } from 'standardwebhooks';
import { apply, createPool, generateSecret, migrate, parseConfig, startEmbeddedPostgres, startRowcast } from '../../src/index.js';
import { createLogger, redactUrl } from '../../src/observability/logger.js';

const follow = process.argv.includes('--follow');
const TABLE_SQL = readFileSync(new URL('./reference-scenario.sql', import.meta.url), 'utf8');
// The document's three example rows and its test row, verbatim.
const INSERTS = [
  `INSERT INTO customer_business_events VALUES ('customer-onboard-app', 'validate-optional-data', '1001', 'Missing secondary phone number', TO_TIMESTAMP('2021-07-14 14:00:00', 'YYYY-MM-DD HH24:MI:SS' ));`,
  `INSERT INTO customer_business_events VALUES ('customer-onboard-app', 'validate-optional-data', '1001', 'Invalid email address', TO_TIMESTAMP('2021-07-14 14:00:01', 'YYYY-MM-DD HH24:MI:SS' ));`,
  `INSERT INTO customer_business_events VALUES ('customer-complaint-app', 'log-customer-complaint', '1001', 'Customer logged a complaint', TO_TIMESTAMP('2021-07-14 14:14:06', 'YYYY-MM-DD HH24:MI:SS' ));`,
  `INSERT INTO customer_business_events VALUES ('customer-onboard-app', 'validate-optional-data', '2001', 'Missing secondary phone number', now());`,
];
const TIMEOUT_MS = 60_000;

const embedded = process.env.DATABASE_URL ? null : await startEmbeddedPostgres();
const databaseUrl = process.env.DATABASE_URL ?? embedded!.url;
console.log('rowcast demo: the reference scenario (table trigger → topic → signed webhook)');
console.log(`database: ${embedded ? 'embedded PostgreSQL (no DATABASE_URL given)' : redactUrl(databaseUrl)}`);

const secret = generateSecret();
const verifier = new Webhook(secret);
const expectedTxids = new Set<string>();
let received = 0;
let resolveAll: () => void;
const allArrived = new Promise<void>((r) => (resolveAll = r));
const started = Date.now();

// The "downstream application": a webhook endpoint that verifies every signature before it trusts a byte.
const receiver = createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c));
  req.on('end', () => {
    let verified = 'signature INVALID';
    try {
      verifier.verify(body, req.headers as Record<string, string>);
      verified = 'signature verified';
    } catch {
      /* printed below */
    }
    res.writeHead(204).end();
    const envelope = JSON.parse(body) as { id: string; subject: string; body: { id: string; op: string; source: { schema: string; table: string; txid: string }; after: unknown; before: unknown } };
    const event = envelope.body;
    const ours = expectedTxids.has(event.source.txid);
    if (ours) received++;
    console.log(
      `\n${ours ? `notification ${received}/${INSERTS.length}` : 'notification'}: ${verified}, webhook-id ${req.headers['webhook-id']}\n` +
        `  subject "${envelope.subject}", event ${event.id}: ${event.op} on ${event.source.schema}.${event.source.table}\n` +
        `  row ${JSON.stringify(event.after ?? event.before)}`,
    );
    if (ours && received === INSERTS.length) resolveAll();
  });
});
await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
const endpoint = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hooks/ops-team`;
console.log(`webhook receiver: ${endpoint}`);

const config = parseConfig(
  {
    topics: { 'my-rds-triggered-topic-1': { description: 'customer business events (the reference SNS topic)' } },
    captures: {
      customer_business_events: {
        table: 'public.customer_business_events',
        operations: ['INSERT', 'UPDATE', 'DELETE'],
        payload: 'row',
        topic: 'my-rds-triggered-topic-1',
        subject: 'Notification for row-insert in RDS',
      },
    },
    subscriptions: {
      'ops-team-webhook': { topic: 'my-rds-triggered-topic-1', protocol: 'http', endpoint, secret, deliveryPolicy: { minDelay: '200ms', maxDelay: '5s' } },
    },
    runtime: { pollInterval: '500ms', logLevel: 'warn' },
  },
  'demo config',
);

const pool = createPool(databaseUrl, { max: 2, applicationName: 'rowcast demo' });
let runtime: Awaited<ReturnType<typeof startRowcast>> | null = null;
const shutdown = async (code: number) => {
  await runtime?.stop();
  await pool.end();
  receiver.close();
  await embedded?.stop();
  process.exit(code);
};
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

try {
  await migrate(pool);
  try {
    await pool.query(TABLE_SQL);
    console.log('created table public.customer_business_events (the document\'s DDL)');
  } catch (err) {
    if ((err as { code?: string }).code !== '42P07') throw err;
    console.log('table public.customer_business_events exists already; using it');
  }
  const result = await apply(pool, config);
  for (const step of new Set(result.steps.map((s) => s.summary))) console.log(`apply: ${step}`);
  runtime = await startRowcast({ databaseUrl, runtime: config.runtime, logger: createLogger('warn') });

  console.log(`\ninserting the document's ${INSERTS.length} rows, one transaction each`);
  for (const sql of INSERTS) {
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(sql);
      expectedTxids.add((await client.query('SELECT pg_current_xact_id()::text AS txid')).rows[0].txid);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
  }
  const timeout = new Promise<never>((_r, reject) => setTimeout(() => reject(new Error(`not all notifications arrived within ${TIMEOUT_MS / 1000} s: got ${received} of ${INSERTS.length}; see \`rowcast status\``)), TIMEOUT_MS).unref());
  await Promise.race([allArrived, timeout]);
  console.log(`\nall ${INSERTS.length} notifications arrived, signatures verified, in ${Date.now() - started} ms`);
  if (!follow) await shutdown(0);
  else {
    console.log(`\n--follow: rowcast keeps running. Change rows and watch, e.g.\n  psql '${databaseUrl}' -c "UPDATE customer_business_events SET category = 'escalated' WHERE customer_reference_id = '2001'"\nCtrl-C to stop.`);
  }
} catch (err) {
  console.error(`demo failed: ${(err as Error).message}`);
  await shutdown(1);
}
