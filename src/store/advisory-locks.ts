/**
 * The PostgreSQL advisory locks rowcast takes, in one place, so that no two uses share a key by accident.
 * Single-key locks are fixed numbers ("ro" + two letters in ASCII); keyed locks use the two-key form
 * (hashtext(namespace), hashtext(name)) or a hash of the namespace and name, written where they are taken.
 */

/** One migrator at a time per database (store/migrate.ts; session lock). "rowc" */
export const MIGRATION_LOCK = 0x726f_7763;
/** One `rowcast apply` at a time per database (admin/config/apply.ts; session lock). "rowa" */
export const APPLY_LOCK = 0x726f_7761;
/** One router pass at a time (routing/route-events.ts; transaction lock, tried, never waited for). "rowr" */
export const ROUTE_LOCK = 0x726f_7772;

/*
 * Keyed locks, taken where their SQL is:
 * - hashtext('rowcast.function:' || name), slot: a function's concurrency slots (functions/invocation-store.ts).
 * - hashtext('rowcast.source'), hashtext(source): one reader per MySQL/PostgreSQL source (capture/mysql/mysql-reader.ts,
 *   capture/postgres/postgres-reader.ts).
 * - hashtext('rowcast.backfill'), hashtext(capture): one backfill per capture (capture/backfill.ts).
 * - hashtext('rowcast.sns_signing_keys'): rotating the SNS signing key (delivery/sns-envelope/signing-keys.ts).
 * - hashtextextended(JSON [topic, protocol, endpoint], 17): one SNS Subscribe per endpoint at a time (sns/sns-subscription-operations.ts).
 * - hashtext('rowcast.resend'), hashtext(subscription || '/' || message id): one resend of a cursor's row-less
 *   delivery at a time (admin/actions/delivery-actions.ts).
 */
