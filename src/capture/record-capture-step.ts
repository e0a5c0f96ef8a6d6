import type { PlanStep } from './plan-step.js';

/** What every capture names, whichever its source. */
interface CaptureTarget {
  topic?: string;
  function?: string;
  subject?: string;
}

/** "topic orders" or "function enrich": where a capture's changes go, for the plan's lines. */
export function describeTarget(capture: CaptureTarget): string {
  return capture.topic !== undefined ? `topic ${capture.topic}` : `function ${capture.function}`;
}

/**
 * The plan step that records a capture in rowcast.captures, where readers, backfills and `status` find it. A
 * source's capture installs nothing in the store: no function, no triggers.
 */
export function recordCaptureStep(
  summary: string,
  row: {
    name: string;
    schema: string;
    table: string;
    capture: CaptureTarget;
    settings: Record<string, unknown>;
    functionName?: string;
    triggers?: string[];
  },
): PlanStep {
  return {
    summary,
    sql: `INSERT INTO rowcast.captures (name, schema_name, table_name, topic, function, subject, settings, function_name, triggers)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
      ON CONFLICT (name) DO UPDATE SET schema_name = EXCLUDED.schema_name, table_name = EXCLUDED.table_name, topic = EXCLUDED.topic,
        function = EXCLUDED.function, subject = EXCLUDED.subject, settings = EXCLUDED.settings, function_name = EXCLUDED.function_name,
        triggers = EXCLUDED.triggers, updated_at = now()`,
    params: [
      row.name,
      row.schema,
      row.table,
      row.capture.topic ?? null,
      row.capture.function ?? null,
      row.capture.subject ?? null,
      row.settings,
      row.functionName ?? '',
      row.triggers ?? [],
    ],
  };
}
