import type pg from 'pg';
import { convertsWithoutCatalog, type SourceType, type TypeLookup } from './text-values.js';

/**
 * The source's catalog of the types its captured columns use, as far as converting their values needs
 * (text-values.ts): arrays' element types, domains' base types, composites' fields, each followed down to the
 * types they use. Read from the source on first use of a type and kept until forget() (a relation message: the
 * table may have changed, and with it its types).
 */
export class SourceTypes {
  private readonly known = new Map<number, SourceType>();
  /** Relations whose column types are known: a change of one costs no lookup (the stream's hot path). */
  private readonly relations = new Set<number>();
  readonly lookup: TypeLookup = (oid) => this.known.get(oid);

  constructor(private readonly client: pg.Client) {}

  forget(): void {
    this.known.clear();
    this.relations.clear();
  }

  /** Reads the types of a relation's columns, once per relation until forget(). */
  async learnRelation(relation: { relationOid: number; columns: { typeOid: number }[] }): Promise<void> {
    if (this.relations.has(relation.relationOid)) return;
    await this.learn(relation.columns.map((c) => c.typeOid));
    this.relations.add(relation.relationOid);
  }

  /** Reads the types among `oids` (and those they use) that are not known yet: one query per level of nesting. */
  async learn(oids: Iterable<number>): Promise<void> {
    let want = [...new Set(oids)].filter((oid) => !convertsWithoutCatalog(oid) && !this.known.has(oid));
    while (want.length) {
      const { rows } = await this.client.query<{
        oid: number;
        kind: string;
        elem: number;
        delim: string | null;
        base: number;
        fields: { name: string; type: number }[];
      }>(
        `SELECT t.oid::int AS oid, t.typtype::text AS kind, CASE WHEN t.typlen = -1 THEN t.typelem::int ELSE 0 END AS elem,
                e.typdelim::text AS delim, t.typbasetype::int AS base,
                COALESCE((SELECT json_agg(json_build_object('name', a.attname::text, 'type', a.atttypid::int) ORDER BY a.attnum)
                            FROM pg_attribute a WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), '[]') AS fields
           FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem
          WHERE t.oid = ANY($1::oid[])`,
        [want],
      );
      const next = new Set<number>();
      for (const r of rows) {
        this.known.set(r.oid, { kind: r.kind, elem: r.elem, delim: r.delim ?? ',', base: r.base, fields: r.fields });
        for (const oid of [r.elem, r.base, ...r.fields.map((f) => f.type)]) if (oid) next.add(oid);
      }
      // A type the catalog no longer has: known as nothing to convert (its values stay text).
      for (const oid of want)
        if (!this.known.has(oid)) this.known.set(oid, { kind: '', elem: 0, delim: ',', base: 0, fields: [] });
      want = [...next].filter((oid) => !convertsWithoutCatalog(oid) && !this.known.has(oid));
    }
  }
}
