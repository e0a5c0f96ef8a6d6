/**
 * The reference scenario (AWS blog: table trigger → Lambda → SNS topic → subscriptions), on rowcast: the
 * document's own SQL (table, my_json_converter, my_db_trigger_function calling aws_lambda.invoke(…, 'Event'), the
 * AFTER INSERT trigger) and a TypeScript port of its handler (the AWS SDK's SNS client for boto3's), which publishes each row to topic
 * my-rds-triggered-topic-1; a signed webhook that this script serves on loopback receives the notifications.
 * Updates and deletes, which the document leaves out, are captured by rowcast itself into the same topic.
 *
 *   npm run demo               uses DATABASE_URL, or an embedded PostgreSQL when it is not set
 *   npm run demo -- --follow   keeps running: change rows from psql and watch the notifications
 *   npm run demo -- --python   runs the reference's Python handler as written (examples/python/lambda_function.py,
 *                              boto3 publishing to the topic) instead of the TypeScript port; needs python3 and boto3
 *   npm run demo -- --mysql    the same on MySQL/MariaDB (Aurora MySQL's form): the table and a trigger calling
 *                              lambda_async() in a MariaDB database, read from its binlog (mysql-scenario.ts)
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { Webhook } from 'standardwebhooks';
import {
  apply,
  createPool,
  generateSecret,
  migrate,
  parseConfig,
  startEmbeddedPostgres,
  startRowcast,
} from '../../src/index.js';
import { createLogger } from '../../src/observability/logger.js';
import { redactUrl } from '../../src/observability/redact.js';
import { MYSQL_INSERTS, MYSQL_URL, mysqlSource, prepareMysql } from './mysql-scenario.js';

const follow = process.argv.includes('--follow');
const python = process.argv.includes('--python');
const onMysql = process.argv.includes('--mysql');
const REFERENCE_SQL = readFileSync(new URL('./reference-scenario.sql', import.meta.url), 'utf8');
const HANDLER = fileURLToPath(new URL('./my-rds-triggered-topic-writer.ts', import.meta.url));
// The document's three example rows and its test row, verbatim.
const INSERTS = [
  `INSERT INTO customer_business_events VALUES ('customer-onboard-app', 'validate-optional-data', '1001', 'Missing secondary phone number', TO_TIMESTAMP('2021-07-14 14:00:00', 'YYYY-MM-DD HH24:MI:SS' ));`,
  `INSERT INTO customer_business_events VALUES ('customer-onboard-app', 'validate-optional-data', '1001', 'Invalid email address', TO_TIMESTAMP('2021-07-14 14:00:01', 'YYYY-MM-DD HH24:MI:SS' ));`,
  `INSERT INTO customer_business_events VALUES ('customer-complaint-app', 'log-customer-complaint', '1001', 'Customer logged a complaint', TO_TIMESTAMP('2021-07-14 14:14:06', 'YYYY-MM-DD HH24:MI:SS' ));`,
  `INSERT INTO customer_business_events VALUES ('customer-onboard-app', 'validate-optional-data', '2001', 'Missing secondary phone number', now());`,
];
const TIMEOUT_MS = 60_000;
const inserts = onMysql ? MYSQL_INSERTS : INSERTS;

// The Python handler: its folder's config (topic and function), and boto3 on the machine's python3.
const PYTHON_DIR = fileURLToPath(new URL('../python/', import.meta.url));
if (python) {
  const probe = spawnSync('python3', ['-c', 'import boto3'], { encoding: 'utf8', timeout: 30_000 });
  if (probe.status !== 0) {
    const why = probe.error
      ? 'python3 is not on the PATH'
      : `python3 cannot import boto3 (${(probe.stderr || '').trim().split('\n').at(-1)})`;
    console.error(
      `npm run demo -- --python: ${why}.\nInstall python3 with boto3 (Debian/Ubuntu: apt-get install python3-boto3; elsewhere: pip install boto3), or run npm run demo for the TypeScript handler.`,
    );
    process.exit(1);
  }
}

// On MySQL: the server must be reachable with its binlog on, before anything is started.
const mysqlDatabase = onMysql ? await prepareMysql() : null;

const embedded = process.env.DATABASE_URL ? null : await startEmbeddedPostgres();
const databaseUrl = process.env.DATABASE_URL ?? embedded!.url;
console.log(
  onMysql
    ? `rowcast demo: the reference scenario on MySQL/MariaDB (trigger → lambda_async → binlog → function → topic → signed webhook)${python ? ', with the Python handler (boto3)' : ''}`
    : `rowcast demo: the reference scenario (trigger → aws_lambda.invoke → function → topic → signed webhook)${python ? ', with the Python handler (boto3)' : ''}`,
);
if (mysqlDatabase)
  console.log(`source: ${redactUrl(MYSQL_URL)}, database ${mysqlDatabase.name} (the rowcast store is below)`);
console.log(`database: ${embedded ? 'embedded PostgreSQL (no DATABASE_URL given)' : redactUrl(databaseUrl)}`);

const secret = generateSecret();
const verifier = new Webhook(secret);
// The document's rows, as the function publishes them (customer_reference_id and exception_reason identify them).
const expected = new Set([
  '1001|Missing secondary phone number',
  '1001|Invalid email address',
  '1001|Customer logged a complaint',
  '2001|Missing secondary phone number',
]);
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
    const envelope = JSON.parse(body) as {
      id: string;
      subject: string | null;
      attributes: Record<string, string>;
      body: Record<string, unknown> & { op?: string; id?: string; after?: unknown; before?: unknown };
    };
    const row = envelope.body;
    const ident = `${row.customer_reference_id}|${row.exception_reason}`;
    const ours = row.op === undefined && expected.delete(ident);
    if (ours) received++;
    const what = row.op
      ? `captured ${row.op} (event ${row.id}) on public.customer_business_events\n  row ${JSON.stringify(row.after ?? row.before)}`
      : `published by function my_rds_triggered_topic_writer after an INSERT\n  row ${JSON.stringify(row)}`;
    console.log(
      `\n${ours ? `notification ${received}/${inserts.length}` : 'notification'}: ${verified}, message id (webhook-id) ${req.headers['webhook-id']}\n` +
        `  subject "${envelope.subject}", ${what}`,
    );
    if (ours && received === inserts.length) resolveAll();
  });
});
await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
const endpoint = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hooks/ops-team`;
console.log(`webhook receiver: ${endpoint}`);

const config = parseConfig(
  {
    topics: { 'my-rds-triggered-topic-1': { description: 'customer business events (the reference SNS topic)' } },
    functions: python
      ? { my_rds_triggered_topic_writer: { ...pythonFunction(), minDelay: '1s', maxDelay: '5s' } }
      : {
          my_rds_triggered_topic_writer: {
            handler: HANDLER,
            environment: { ENV_TOPIC_ARN: 'arn:aws:sns:us-east-2:123456789100:my-rds-triggered-topic-1' },
            minDelay: '1s',
            maxDelay: '5s',
          },
        },
    ...(mysqlDatabase ? { sources: mysqlSource() } : {}),
    captures: {
      // The document's trigger covers inserts; rowcast captures the rest of the row's life into the same topic.
      customer_business_events_changes: {
        ...(mysqlDatabase ? { source: 'maria' } : {}),
        table: mysqlDatabase ? `${mysqlDatabase.name}.customer_business_events` : 'public.customer_business_events',
        operations: ['UPDATE', 'DELETE'],
        payload: 'diff',
        topic: 'my-rds-triggered-topic-1',
        subject: 'Notification for row-change in RDS',
      },
    },
    subscriptions: {
      'ops-team-webhook': {
        topic: 'my-rds-triggered-topic-1',
        protocol: 'http',
        endpoint,
        secret,
        deliveryPolicy: { minDelay: '200ms', maxDelay: '5s' },
      },
    },
    // The demo's webhook receiver listens on 127.0.0.1: an internal address, refused unless allowed.
    runtime: { pollInterval: '500ms', logLevel: 'warn', allowPrivateEndpoints: true },
  },
  'demo config',
  // The Python function's directory is relative to its config's folder.
  python ? PYTHON_DIR : process.cwd(),
);

/**
 * rowcast's log with the Python handler's output: its print() lines (logged at info, tagged with the invocation)
 * printed as the handler wrote them, and rowcast's own warnings and errors as usual.
 */
function pythonOutput() {
  return createLogger('info', {
    write(line: string) {
      const entry = JSON.parse(line) as { level: number; msg?: string; stream?: string; invocation?: string };
      if (entry.stream) console.log(`  python (invocation ${entry.invocation ?? '-'}): ${entry.msg ?? ''}`);
      else if (entry.level >= 40) process.stdout.write(line);
    },
  });
}

/** examples/python/rowcast.config.json's function: the handler as written, run by the machine's python3. */
function pythonFunction(): Record<string, unknown> {
  const declared = JSON.parse(readFileSync(new URL('rowcast.config.json', `file://${PYTHON_DIR}`), 'utf8')) as {
    functions: Record<string, Record<string, unknown>>;
  };
  return declared.functions.my_rds_triggered_topic_writer!;
}

/** The document's PostgreSQL SQL; one multi-statement query runs as one transaction: all of it, or none. */
async function runReferenceSql() {
  try {
    await pool.query(REFERENCE_SQL);
    console.log(`ran the document's SQL: table, my_json_converter, my_db_trigger_function, trigger_insert_event`);
  } catch (err) {
    if ((err as { code?: string }).code !== '42P07') throw err;
    console.log('table public.customer_business_events exists already: using it and its trigger as they are');
  }
}

const pool = createPool(databaseUrl, { max: 2, applicationName: 'rowcast demo' });
let runtime: Awaited<ReturnType<typeof startRowcast>> | null = null;
const shutdown = async (code: number) => {
  await runtime?.stop();
  await pool.end();
  await mysqlDatabase?.close();
  receiver.close();
  await embedded?.stop();
  process.exit(code);
};
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

try {
  await migrate(pool);
  if (!mysqlDatabase) await runReferenceSql();
  const result = await apply(pool, config);
  for (const step of new Set(result.steps.map((s) => s.summary))) console.log(`apply: ${step}`);
  // lambda_async exists once apply has installed it in the captured database: the trigger comes after.
  if (mysqlDatabase) await mysqlDatabase.createTrigger();
  // A Python handler's print() reaches rowcast's log (tagged with the invocation) at level info.
  runtime = await startRowcast({
    databaseUrl,
    runtime: config.runtime,
    functions: config.functions,
    sources: config.sources,
    logger: python ? pythonOutput() : createLogger('warn'),
  });

  console.log(`\ninserting the document's ${inserts.length} rows`);
  if (mysqlDatabase) await mysqlDatabase.insert(inserts);
  else for (const sql of inserts) await pool.query(sql);
  const timeout = new Promise<never>((_r, reject) =>
    setTimeout(
      () =>
        reject(
          new Error(
            `not all notifications arrived within ${TIMEOUT_MS / 1000} s: got ${received} of ${inserts.length}; see \`rowcast status\``,
          ),
        ),
      TIMEOUT_MS,
    ).unref(),
  );
  await Promise.race([allArrived, timeout]);
  console.log(`\nall ${inserts.length} notifications arrived, signatures verified, in ${Date.now() - started} ms`);
  if (!follow) await shutdown(0);
  else {
    console.log(
      `\n--follow: rowcast keeps running. Change rows and watch, e.g.\n  psql '${databaseUrl}' -c "UPDATE customer_business_events SET category = 'escalated' WHERE customer_reference_id = '2001'"\n  npx rowcast invocations --database-url '${databaseUrl}'\nCtrl-C to stop.`,
    );
  }
} catch (err) {
  console.error(`demo failed: ${(err as Error).message}`);
  await shutdown(1);
}
