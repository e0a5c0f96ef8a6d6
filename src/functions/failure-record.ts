import type { HandlerError } from '../model/thread-protocol.js';

export type FailureCondition = 'RetriesExhausted' | 'EventAgeExceeded';

/**
 * The message an on-failure topic receives: AWS Lambda's destination record for asynchronous invocations
 * (version 1.0), so consumers written for Lambda destinations read it unchanged; plus the function's name. The
 * invocation's payload is embedded byte for byte.
 */
export function failureRecord(input: {
  invocationId: string;
  functionName: string;
  condition: FailureCondition;
  attempts: number;
  payload: string;
  error: HandlerError;
  at?: Date;
}): string {
  const requestContext = {
    requestId: input.invocationId,
    functionArn: `arn:aws:lambda:local:000000000000:function:${input.functionName}:$LATEST`,
    functionName: input.functionName,
    condition: input.condition,
    approximateInvokeCount: input.attempts,
  };
  const responseContext = { statusCode: 200, executedVersion: '$LATEST', functionError: 'Unhandled' };
  const responsePayload = {
    errorType: input.error.type,
    errorMessage: input.error.message,
    stackTrace: input.error.stack,
  };
  return `{"version":"1.0","timestamp":${JSON.stringify((input.at ?? new Date()).toISOString())},"requestContext":${JSON.stringify(requestContext)},"requestPayload":${isJson(input.payload) ? input.payload : JSON.stringify(input.payload)},"responseContext":${JSON.stringify(responseContext)},"responsePayload":${JSON.stringify(responsePayload)}}`;
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
