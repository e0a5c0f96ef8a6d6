// rowcast's library API: the same features as the CLI.
export { defineConfig, type RowcastConfig, type RowcastConfigInput, type CaptureConfig, type SubscriptionConfig, type DeliveryPolicy, type RuntimeConfig } from './config/schema.js';
export { loadConfig, parseConfig, findConfigFile } from './config/load.js';
export { RowcastError, ErrorCodes, type ErrorCode } from './errors.js';
export { migrate, pendingMigrations } from './store/migrate.js';
export { createPool, type Pool } from './store/pool.js';
export { apply, formatPlan, generateSecret, type ApplyResult, type PlanStep } from './capture/apply.js';
export { startRowcast, type RowcastRuntime, type StartOptions } from './dispatcher/runtime.js';
export { getStatus, redrive, resumeSubscription, pauseSubscription, getSubscriptionSecrets, rotateSecret, listInvocations, type Status, type SubscriptionStatus, type InvocationRecord, type RotatedSecret } from './control-plane/operations.js';
export { type InvocationAnswer, invokeAndWait, invokeFunction } from './functions/invoke.js';
export {
  getOverview,
  getLag,
  listCaptures,
  listFunctions,
  listTopics,
  listSubscriptions,
  getSubscription,
  listEvents,
  listInvocationPage,
  listDeliveries,
  getDelivery,
  type Overview,
  type Lag,
  type Page,
  type DeliveryItem,
  type DeliveryDetail,
  type AttemptLogEntry,
} from './control-plane/inspect.js';
export { redactEndpoint } from './observability/logger.js';
export { pauseFunction, resumeFunction, redriveDelivery, replayCapture, sendTestMessage, testFilterPolicy, type ReplayOptions, type FilterPolicyVerdict } from './control-plane/admin-actions.js';
export { resendDelivery } from './control-plane/resend-delivery.js';
export { observe, type ObservedEvents } from './observability/observe.js';
export type { FunctionConfig } from './config/schema.js';
export type { LambdaContext, PublishOptions } from './functions/lambda-context.js';
export { startEmbeddedPostgres, type EmbeddedDatabase } from './store/embedded-postgres.js';
export type { OutboundMessage } from './subscriptions/sinks/sink.js';
