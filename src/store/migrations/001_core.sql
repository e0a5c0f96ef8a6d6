-- rowcast core schema: captured events, topics, messages, subscriptions and their deliveries.

CREATE TABLE rowcast.topics (
  name        text PRIMARY KEY,
  description text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rowcast.subscriptions (
  name             text PRIMARY KEY,
  topic            text NOT NULL REFERENCES rowcast.topics (name) ON DELETE CASCADE,
  protocol         text NOT NULL,
  endpoint         text NOT NULL,
  -- format, headers, delivery policy, concurrency: everything a sink needs besides the secret.
  settings         jsonb NOT NULL DEFAULT '{}',
  secret           text,
  -- active: delivering; paused: by an operator; disabled: by the endpoint (HTTP 410) until resumed.
  state            text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'paused', 'disabled')),
  state_reason     text,
  state_changed_at timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rowcast.captures (
  name        text PRIMARY KEY,
  schema_name text NOT NULL,
  table_name  text NOT NULL,
  topic       text NOT NULL REFERENCES rowcast.topics (name),
  subject     text,
  settings    jsonb NOT NULL DEFAULT '{}',
  -- what apply installed, so that it can update and remove exactly that.
  function_name text NOT NULL,
  triggers    text[] NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Written by capture triggers in the writer's transaction: a rolled-back change leaves no row here.
CREATE TABLE rowcast.events (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  capture     text NOT NULL,
  topic       text NOT NULL,
  op          text NOT NULL,
  schema_name text NOT NULL,
  table_name  text NOT NULL,
  key         jsonb,
  before      jsonb,
  after       jsonb,
  changed     text[],
  txid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
  trace       text,
  captured_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  routed_at   timestamptz
);
-- Routing claims unrouted events; never "id > last seen" (a lower id can commit later).
CREATE INDEX events_unrouted ON rowcast.events (id) WHERE routed_at IS NULL;
CREATE INDEX events_captured_at ON rowcast.events USING brin (captured_at);

CREATE TABLE rowcast.messages (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  topic        text NOT NULL,
  subject      text,
  body         text NOT NULL,
  content_type text NOT NULL DEFAULT 'application/json',
  attributes   jsonb NOT NULL DEFAULT '{}',
  group_key    text,
  event_id     bigint,
  trace        text,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_created_at ON rowcast.messages USING brin (created_at);

CREATE TABLE rowcast.deliveries (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  message_id   uuid NOT NULL REFERENCES rowcast.messages (id) ON DELETE CASCADE,
  subscription text NOT NULL REFERENCES rowcast.subscriptions (name) ON DELETE CASCADE,
  state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'in_flight', 'done', 'dead')),
  -- attempts started so far; also the fencing token of the current lease.
  attempts     integer NOT NULL DEFAULT 0,
  -- pending: when the next attempt may start; in_flight: when the lease expires and another process may take it.
  available_at timestamptz NOT NULL DEFAULT now(),
  lease_owner  text,
  last_status  integer,
  last_error   text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  delivered_at timestamptz
);
CREATE INDEX deliveries_claim ON rowcast.deliveries (subscription, available_at) WHERE state IN ('pending', 'in_flight');
CREATE INDEX deliveries_dead ON rowcast.deliveries (subscription) WHERE state = 'dead';
CREATE INDEX deliveries_message ON rowcast.deliveries (message_id);

-- Running dispatchers. Capture triggers send a NOTIFY only while one of them sleeps: a NOTIFY makes every
-- writing transaction take a cluster-wide lock at commit, so under load (nobody sleeping) none is sent.
CREATE UNLOGGED TABLE rowcast.dispatchers (
  id           text PRIMARY KEY,
  backend_pid  integer,
  host         text,
  sleeping     boolean NOT NULL DEFAULT false,
  started_at   timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now()
);
