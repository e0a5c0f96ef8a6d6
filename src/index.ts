// rowcast's library API: the same features as the CLI.
export { defineConfig, type RowcastConfig, type RowcastConfigInput } from './config/schema.js';
export { type CaptureConfig } from './config/capture-schema.js';
export { type SubscriptionConfig, type DeliveryPolicy } from './config/subscription-schema.js';
export { type RuntimeConfig } from './config/runtime-schema.js';
export { loadConfig, parseConfig, findConfigFile } from './admin/load-config.js';
export { RowcastError, ErrorCodes, type ErrorCode } from './model/errors.js';
export { migrate, pendingMigrations } from './store/migrate.js';
export { createPool, type Pool } from './store/pool.js';
export { apply, formatPlan, generateSecret, type ApplyResult, type PlanStep } from './admin/apply.js';
export { startRowcast, type RowcastRuntime, type StartOptions } from './app/runtime.js';
export {
  getStatus,
  redrive,
  resumeSubscription,
  pauseSubscription,
  getSubscriptionSecrets,
  rotateSecret,
  listInvocations,
  type Status,
  type SubscriptionStatus,
  type InvocationRecord,
  type RotatedSecret,
} from './admin/operations.js';
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
} from './admin/inspect.js';
export { redactEndpoint } from './observability/logger.js';
export {
  pauseFunction,
  resumeFunction,
  redriveDelivery,
  replayCapture,
  sendTestMessage,
  testFilterPolicy,
  type ReplayOptions,
  type FilterPolicyVerdict,
} from './admin/admin-actions.js';
export { resendDelivery } from './admin/resend-delivery.js';
export { observe, type ObservedEvents } from './observability/observe.js';
export type { FunctionConfig } from './config/function-schema.js';
export type { LambdaContext, PublishOptions } from './functions/lambda-context.js';
export { startEmbeddedPostgres, type EmbeddedDatabase } from './store/embedded-postgres.js';
export type { OutboundMessage } from './model/sink.js';
