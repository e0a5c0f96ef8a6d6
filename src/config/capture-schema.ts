import { z } from 'zod';
import { functionName } from './function-schema.js';
import { sourceName } from './source-schema.js';
import { topicName } from './topic-schema.js';

/** Trigger names are "rowcast_<capture>_<op>" and must fit PostgreSQL's 63-byte identifiers. */
export const captureName = z.string().regex(/^[A-Za-z0-9_-]{1,40}$/, 'use 1–40 letters, digits, "-" or "_"');

export const OPERATIONS = ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE'] as const;
export type Operation = (typeof OPERATIONS)[number];

const tableRef = z.union(
  [z.string().min(1), z.strictObject({ schema: z.string().min(1).default('public'), name: z.string().min(1) })],
  { error: 'write the table as "table", "schema.table", or { schema: "…", name: "…" } (for names that contain dots)' },
);

const whenClause = z.union(
  [
    z.string().min(1),
    z.strictObject({
      insert: z.string().min(1).optional(),
      update: z.string().min(1).optional(),
      delete: z.string().min(1).optional(),
    }),
  ],
  {
    error:
      'write an SQL condition over OLD/NEW (e.g. "NEW.total > 100"), or { insert, update, delete } with one condition per operation',
  },
);

export const captureSchema = z.strictObject({
  /**
   * The database whose changes are captured: absent, the store itself (rowcast's own PostgreSQL); or the name of
   * one of `sources` (a MySQL/MariaDB server, whose table is written "database.table"; or another PostgreSQL
   * server, "schema.table"; see docs/sources.md).
   */
  source: sourceName.optional(),
  /** "table", "schema.table", or { schema, name } for names that contain dots. */
  table: tableRef,
  /** Which operations produce events. TRUNCATE produces one statement-level event without rows. */
  operations: z.array(z.enum(OPERATIONS)).min(1).default(['INSERT', 'UPDATE', 'DELETE']),
  /** keys: primary key only (the reference's "summary"); row: the new row (old row for DELETE); diff: old + new + changed columns. */
  payload: z.enum(['keys', 'row', 'diff']).default('row'),
  /** Only these columns in row and diff payloads (the primary key is always in `key`). */
  columns: z.array(z.string().min(1)).min(1).optional(),
  /** SQL boolean over OLD/NEW, evaluated by PostgreSQL before the row is captured; per operation or for all. */
  when: whenClause.optional(),
  /**
   * row: a trigger per changed row. statement: one trigger per statement that captures all its rows with one
   * INSERT … SELECT from transition tables (faster for multi-row statements; same events). Statement-level
   * UPDATE pairs old and new rows by primary key, so `diff` payloads and `when` conditions on UPDATE need one.
   * logical: no trigger at all; a running rowcast reads the committed changes from PostgreSQL's write-ahead log
   * (logical replication, a `pgoutput` slot) and writes the same events, so writers pay nothing extra. Needs
   * `wal_level = logical` and a role with REPLICATION; UPDATE/DELETE captures set the table's REPLICA IDENTITY
   * to FULL (old rows in the log). The events carry no trace context (`rowcast.traceparent` stays with the writer).
   */
  mode: z.enum(['row', 'statement', 'logical']).default('row'),
  /** The topic that receives one message per captured change — or, instead, `function`. */
  topic: topicName.optional(),
  /** The function invoked once per captured change (its event is the change event). */
  function: functionName.optional(),
  /** Subject of the messages (SNS "Subject"; email subject line). */
  subject: z.string().max(100).optional(),
});

export type CaptureConfig = z.output<typeof captureSchema>;
