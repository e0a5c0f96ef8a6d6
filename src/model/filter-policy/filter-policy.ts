/**
 * Amazon SNS subscription filter policies: validation (with problems that say where and how to fix) and matching.
 * Pure: no I/O, no clock, no randomness.
 *
 * A policy is a JSON object. Each key names a message attribute (scope MessageAttributes) or a property of the
 * JSON body (scope MessageBody, where objects nest to reach nested properties). Each key holds an array of
 * conditions: the key matches when any condition matches (OR); the policy matches when every key does (AND).
 * "$or": [{…}, {…}] matches when any of its sub-policies does.
 *
 * rowcast attributes are strings (SNS also has Number and String.Array attributes): an attribute string that is
 * a valid number counts as a number for numeric conditions and exact numbers ([5] matches "5" and "5.0"), "true"
 * and "false" match the booleans, and a string[] attribute plays String.Array (any element may match).
 */

export {
  editDistance,
  FILTER_POLICY_LIMITS,
  type FilterAttributeValue,
  type FilterMessage,
  type FilterPolicyScope,
} from './policy-support.js';
export { validateFilterPolicy } from './validate-filter-policy.js';
export { compileFilterPolicy, matchesFilterPolicy, messagePassesFilter } from './match-filter-policy.js';
