import pg from 'pg';

/** Quotes an identifier for SQL (the same rules as PostgreSQL's quote_ident / format('%I'), always quoted). */
export const ident = (name: string): string => pg.escapeIdentifier(name);
/** Quotes a string literal for SQL (format('%L')). */
export const literal = (value: string): string => pg.escapeLiteral(value);
/** schema.table, both quoted. */
export const qualified = (schema: string, name: string): string => `${ident(schema)}.${ident(name)}`;

/**
 * A statement of a hot path, prepared once per connection: later runs skip parsing and planning (0.6–0.7 ms each
 * for the routing and claim statements, which is much of an idle chain's latency). rowcast needs session
 * connections anyway (LISTEN, advisory locks), so a pooler in transaction mode is not in the way.
 */
export function prepared(name: string, text: string): (values: unknown[]) => pg.QueryConfig {
  const statement = `rowcast_${name}`;
  return (values) => ({ name: statement, text, values });
}

/**
 * The fence of every write that ends a lease of a delivery or invocation (`row` its alias; `r` the result or
 * release, with `attempt` and `lease`): the lease must still be the one the worker got. Claims commit without
 * waiting for their flush, so a PostgreSQL crash can lose one and hand out the same (id, attempt) again; the token is
 * random (gen_random_uuid() at every claim and direct lease), so it never comes back. The attempt is matched too: a
 * process of the version before tokens (migration 013) takes leases over without setting one.
 */
export const leaseFence = (row: string): string =>
  `${row}.lease = r.lease AND ${row}.attempts = r.attempt AND ${row}.state = 'in_flight'`;

/** A row as pg returns it: its columns' types are the SQL's, known to the mapper that reads it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the one untyped row type; mappers give it a type
export type SqlRow = Record<string, any>;
