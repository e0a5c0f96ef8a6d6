-- Operating rowcast: functions can be paused like subscriptions, and deliveries keep a short attempt log.

-- active: invocations run; paused: by an operator (admin API / library), they wait until resumed.
ALTER TABLE rowcast.functions
  ADD COLUMN state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused')),
  ADD COLUMN state_reason text,
  ADD COLUMN state_changed_at timestamptz;

-- The attempt history of a delivery: [{ attempt, at, outcome: delivered|failed|dead, status, error, durationMs }],
-- the last 20 attempts. Written by the batched result statement only once an attempt failed (a delivery that
-- succeeds at once keeps NULL: its one attempt is read from attempts, delivered_at and last_status), so the hot
-- path of healthy subscriptions pays nothing.
ALTER TABLE rowcast.deliveries ADD COLUMN attempt_log jsonb;
