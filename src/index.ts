// rowcast's library API: the same features as the CLI.
export { defineConfig, type RowcastConfig, type RowcastConfigInput, type CaptureConfig, type SubscriptionConfig, type DeliveryPolicy, type RuntimeConfig } from './config/schema.js';
export { loadConfig, parseConfig, findConfigFile } from './config/load.js';
export { RowcastError, ErrorCodes, type ErrorCode } from './errors.js';
export { migrate, pendingMigrations } from './store/migrate.js';
export { createPool, type Pool } from './store/pool.js';
export { apply, formatPlan, generateSecret, type ApplyResult, type PlanStep } from './capture/apply.js';
export { startRowcast, type RowcastRuntime, type StartOptions } from './dispatcher/runtime.js';
export { getStatus, redrive, resumeSubscription, pauseSubscription, getSubscriptionSecrets, listInvocations, type Status, type SubscriptionStatus, type InvocationRecord } from './control-plane/operations.js';
export { invokeFunction } from './functions/invoke.js';
export type { FunctionConfig } from './config/schema.js';
export type { LambdaContext, PublishOptions } from './functions/lambda-context.js';
export { startEmbeddedPostgres, type EmbeddedDatabase } from './store/embedded-postgres.js';
export type { OutboundMessage } from './subscriptions/sinks/sink.js';
