import pg from 'pg';

/** Quotes an identifier for SQL (the same rules as PostgreSQL's quote_ident / format('%I'), always quoted). */
export const ident = (name: string): string => pg.escapeIdentifier(name);
/** Quotes a string literal for SQL (format('%L')). */
export const literal = (value: string): string => pg.escapeLiteral(value);
/** schema.table, both quoted. */
export const qualified = (schema: string, name: string): string => `${ident(schema)}.${ident(name)}`;
