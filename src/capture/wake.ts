/**
 * Wakes a sleeping dispatcher of another process, as a capture trigger does: every reader that writes events
 * (logical capture, MySQL and PostgreSQL sources, backfills) runs it in the transaction that writes them.
 */
export const WAKE = `SELECT count(pg_notify('rowcast', '')) FROM (SELECT 1 FROM rowcast.dispatchers WHERE sleeping LIMIT 1) AS s`;
