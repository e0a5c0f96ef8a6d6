/** One step of `rowcast apply`'s plan: the capture stages plan theirs, admin/config/apply.ts runs them in one transaction. */
export interface PlanStep {
  /** One line for people: "+ capture orders on public.orders". */
  summary: string;
  sql: string;
  params?: unknown[];
  /** Indexes of parameters that hold secrets: never printed. */
  secretParams?: number[];
}

/** Work `apply` does on a MySQL server once the store's part is planned: one line for people, and the work. */
export interface SourceInstall {
  summary: string;
  /** Returns a note for people when it did less than its summary says. */
  run: () => Promise<string | void>;
}
