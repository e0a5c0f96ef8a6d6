// rowcast's library API: the same features as the CLI.
export { defineConfig, type RowcastConfig, type RowcastConfigInput } from './config/schema.js';
export { type CaptureConfig } from './config/capture-schema.js';
export { type SubscriptionConfig, type DeliveryPolicy } from './config/subscription-schema.js';
export { type RuntimeConfig } from './config/runtime-schema.js';
export { RowcastError, ErrorCodes, type ErrorCode } from './model/errors.js';
export { migrate, pendingMigrations } from './store/migrate.js';
export { createPool, type Pool } from './store/pool.js';
export { startRowcast, type RowcastRuntime, type StartOptions } from './app/runtime.js';
export { type InvocationAnswer, invokeAndWait, invokeFunction } from './functions/invoke.js';
export { redactEndpoint } from './observability/redact.js';
export { observe, type ObservedEvents } from './observability/observe.js';
export type { FunctionConfig } from './config/function-schema.js';
export type { LambdaContext, PublishOptions } from './functions/lambda-context.js';
export { startEmbeddedPostgres, type EmbeddedDatabase } from './store/embedded-postgres.js';
export type { OutboundMessage } from './model/sink.js';

// The config: load it, plan it, apply it (admin/config/).
export { loadConfig, parseConfig, findConfigFile } from './admin/config/load-config.js';
export { apply, formatPlan, generateSecret, type ApplyResult, type PlanStep } from './admin/config/apply.js';

// Read-only inspection (admin/inspect/).
export { getStatus, type Status, type SubscriptionStatus } from './admin/inspect/status.js';
export { getOverview, getLag, type Overview, type Lag } from './admin/inspect/overview.js';
export {
  listCaptures,
  listFunctions,
  listTopics,
  listSubscriptions,
  getSubscription,
} from './admin/inspect/declarations.js';
export { listEvents } from './admin/inspect/events.js';
export { listInvocations, listInvocationPage, type InvocationRecord } from './admin/inspect/invocations.js';
export {
  listDeliveries,
  getDelivery,
  type DeliveryItem,
  type DeliveryDetail,
  type AttemptLogEntry,
} from './admin/inspect/deliveries.js';
export type { Page } from './admin/inspect/page.js';

// An operator's actions (admin/actions/).
export { redrive, redriveDelivery, resendDelivery } from './admin/actions/delivery-actions.js';
export { replayCapture, type ReplayOptions } from './admin/actions/replay-capture.js';
export { pauseSubscription, resumeSubscription, sendTestMessage } from './admin/actions/subscription-actions.js';
export { getSubscriptionSecrets, rotateSecret, type RotatedSecret } from './admin/actions/signing-secrets.js';
export { pauseFunction, resumeFunction } from './admin/actions/function-actions.js';
export { testFilterPolicy, type FilterPolicyVerdict } from './admin/actions/test-filter-policy.js';
