import type { FastifyReply } from 'fastify';
import { awsSchema } from '../../config/aws-schema.js';
import { SnsError } from '../../sns/query-protocol.js';
import { resolveCredentials } from './sns-api-routes.js';
import { verifySigV4 } from '../../sns/sigv4-verify.js';
import { ErrorCodes, RowcastError } from '../../model/errors.js';
import { type InvocationAnswer, invokeAndWait, queueInvocation } from '../../functions/invoke.js';
import type { HttpRoutePlugin } from './route-plugin.js';
import { type AwsIdentity, lambdaFunctionArn, parseArn } from '../../model/arn.js';

/** Lambda's limit on a synchronous invocation's payload. */
const MAX_PAYLOAD_BYTES = 6 * 1024 * 1024;
/** The verifier's errors (SNS's codes) as Lambda names them. */
const LAMBDA_AUTH_ERRORS: Record<string, [number, string]> = {
  MissingAuthenticationToken: [403, 'MissingAuthenticationTokenException'],
  IncompleteSignature: [400, 'IncompleteSignatureException'],
  InvalidClientTokenId: [403, 'UnrecognizedClientException'],
  SignatureDoesNotMatch: [403, 'InvalidSignatureException'],
  RequestExpired: [403, 'InvalidSignatureException'],
};
/** Lambda returns the last 4 KB of the invocation's log with X-Amz-Log-Type: Tail. */
const LOG_TAIL_BYTES = 4096;

/**
 * Lambda's Invoke API (`POST /2015-03-31/functions/{FunctionName}/invocations`), for applications and SDKs:
 * Event queues the invocation durably and answers 202; DryRun checks the function (204); RequestResponse runs it
 * now through the same queue (its concurrency and history apply) and answers with its result, or its error with
 * X-Amz-Function-Error. Requests are signed with SigV4 by a key of aws.credentials, verified as the SNS API's are;
 * the route is public (no bearer token): the signature is the authentication (docs/functions.md).
 */
export function lambdaInvokeRoutes(identity?: AwsIdentity): HttpRoutePlugin {
  return (app, context) => {
    const { pool } = context;
    const aws = identity ?? context.aws ?? awsSchema.parse({});
    const secrets = resolveCredentials(context.aws ?? awsSchema.parse({}), (message) => context.log.warn(message));
    const waiting = new Set<AbortController>();
    app.addHook('preClose', async () => {
      for (const w of waiting) w.abort();
    });
    // The payload is taken as it is (byte for byte, whatever the content type the SDK sends).
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_PAYLOAD_BYTES }, (_req, body, done) =>
      done(null, body),
    );

    app.post<{ Params: { name: string }; Querystring: { Qualifier?: string } }>(
      '/2015-03-31/functions/:name/invocations',
      { bodyLimit: MAX_PAYLOAD_BYTES, config: { public: true } },
      async (request, reply) => {
        if (!secrets.size)
          return lambdaError(
            reply,
            403,
            'UnrecognizedClientException',
            'The Invoke API has no credentials: add aws.credentials ({ "<access key id>": { env: "VARIABLE" } }) to rowcast\'s config and restart.',
          );
        try {
          const [path, query = ''] = request.url.split('?');
          await verifySigV4(
            {
              method: request.method,
              path: path!,
              query: Object.fromEntries(new URLSearchParams(query)),
              headers: request.headers,
              body: (request.body as Buffer | undefined) ?? '',
            },
            secrets,
            'lambda',
          );
        } catch (err) {
          if (!(err instanceof SnsError)) throw err;
          const [status, type] = LAMBDA_AUTH_ERRORS[err.code] ?? [403, 'UnrecognizedClientException'];
          return lambdaError(reply, status, type, err.message);
        }
        const target = functionOf(request.params.name, request.query.Qualifier);
        if ('error' in target) return lambdaError(reply, 400, 'InvalidParameterValueException', target.error);
        const { name, qualifier } = target;
        const arn = lambdaFunctionArn(aws, name);
        if (qualifier !== undefined && qualifier !== '$LATEST')
          return lambdaError(
            reply,
            404,
            'ResourceNotFoundException',
            `Function not found: ${arn}:${qualifier} (rowcast runs $LATEST only)`,
          );
        const type = header(request.headers['x-amz-invocation-type']) ?? 'RequestResponse';
        if (!['Event', 'RequestResponse', 'DryRun'].includes(type)) {
          return lambdaError(
            reply,
            400,
            'InvalidParameterValueException',
            `X-Amz-Invocation-Type "${type}" is not one of Event, RequestResponse, DryRun`,
          );
        }
        const { rows } = await pool.query<{ runnable: boolean }>(
          `SELECT state <> 'paused' AND coalesce((settings->>'concurrency')::int, 1) > 0 AS runnable FROM rowcast.functions WHERE name = $1`,
          [name],
        );
        if (!rows.length) return lambdaError(reply, 404, 'ResourceNotFoundException', `Function not found: ${arn}`);
        if (type === 'DryRun') return reply.code(204).send();
        // A paused function (or concurrency 0) would keep a waiting caller forever: throttled, as Lambda does with reserved concurrency 0.
        if (type === 'RequestResponse' && !rows[0]!.runnable) {
          return lambdaError(
            reply,
            429,
            'TooManyRequestsException',
            `Rate Exceeded: function ${name} is paused or has concurrency 0; resume it, or invoke with InvocationType Event to queue the event`,
            {
              Reason: 'ReservedFunctionConcurrentInvocationLimitExceeded',
            },
          );
        }
        const body = request.body as Buffer | undefined;
        const payload = body?.length ? body.toString('utf8') : '{}';
        try {
          JSON.parse(payload);
        } catch (err) {
          return lambdaError(
            reply,
            400,
            'InvalidRequestContentException',
            `Could not parse request body into json: ${(err as Error).message}`,
          );
        }
        const context = clientContext(header(request.headers['x-amz-client-context']));
        if (context instanceof Error) return lambdaError(reply, 400, 'InvalidParameterValueException', context.message);
        try {
          if (type === 'Event') {
            await queueInvocation(pool, name, payload, 'api', context);
            return reply.code(202).send();
          }
          const controller = new AbortController();
          waiting.add(controller);
          // The caller went away: stop waiting (the invocation still runs, as on Lambda).
          reply.raw.once('close', () => controller.abort());
          const { id, answer } = await invokeAndWait(pool, name, payload, {
            clientContext: context,
            signal: controller.signal,
          }).finally(() => waiting.delete(controller));
          if (!answer)
            return lambdaError(
              reply,
              503,
              'ServiceException',
              `rowcast is shutting down; invocation ${id} runs on, see rowcast invocations`,
            );
          reply.code(200).header('content-type', 'application/json').header('x-amz-executed-version', '$LATEST');
          if (answer.state === 'failed') reply.header('x-amz-function-error', 'Unhandled');
          if (header(request.headers['x-amz-log-type']) === 'Tail')
            reply.header('x-amz-log-result', logTail(id, answer));
          return reply.send(answer.payload ?? 'null');
        } catch (err) {
          if (err instanceof RowcastError && err.code === ErrorCodes.NOT_FOUND)
            return lambdaError(reply, 404, 'ResourceNotFoundException', `Function not found: ${arn}`);
          throw err;
        }
      },
    );
  };
}

/** FunctionName as Lambda takes it: a name, "name:qualifier", "<account>:function:name", or a function ARN. */
function functionOf(
  raw: string,
  qualifier: string | undefined,
): { name: string; qualifier: string | undefined } | { error: string } {
  const parsed = raw.startsWith('arn:') ? parseArn(raw) : null;
  let resource = raw;
  if (raw.startsWith('arn:')) {
    if (!parsed || parsed.service !== 'lambda')
      return {
        error: `FunctionName "${raw}" is not a Lambda function ARN (arn:aws:lambda:<region>:<account>:function:<name>)`,
      };
    resource = parsed.resource;
  } else {
    const partial = /^\d{12}:(function:.+)$/.exec(raw);
    if (partial) resource = partial[1]!;
  }
  if (resource.startsWith('function:')) resource = resource.slice('function:'.length);
  const [name, inNameQualifier, extra] = resource.split(':');
  if (!name || extra !== undefined || !/^[A-Za-z0-9_-]{1,64}$/.test(name))
    return { error: `FunctionName "${raw}" is not a function name, "name:qualifier", partial ARN or function ARN` };
  if (inNameQualifier !== undefined && qualifier !== undefined && inNameQualifier !== qualifier)
    return { error: `the qualifier in FunctionName (${inNameQualifier}) differs from Qualifier (${qualifier})` };
  return { name, qualifier: qualifier ?? inNameQualifier };
}

/** X-Amz-Client-Context: base64 of a JSON object (Lambda's mobile client context). */
function clientContext(value: string | undefined): unknown {
  if (!value) return undefined;
  try {
    return JSON.parse(Buffer.from(value, 'base64').toString('utf8'));
  } catch {
    return new Error('X-Amz-Client-Context must be a base64-encoded JSON object');
  }
}

/**
 * The log tail: the function's own output goes to rowcast's log (tagged with the invocation), so the tail holds
 * Lambda's START/END/REPORT lines for the invocation, and its error if it failed.
 */
function logTail(id: string, answer: InvocationAnswer): string {
  const lines = [`START RequestId: ${id} Version: $LATEST`];
  if (answer.error) lines.push(answer.error);
  lines.push(`END RequestId: ${id}`, `REPORT RequestId: ${id}\tDuration: ${answer.durationMs} ms`);
  const tail = Buffer.from(`${lines.join('\n')}\n`);
  return tail.subarray(Math.max(0, tail.length - LOG_TAIL_BYTES)).toString('base64');
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** Lambda's error response: the type in x-amzn-ErrorType (as the SDKs read it) and the body. */
function lambdaError(
  reply: FastifyReply,
  status: number,
  type: string,
  message: string,
  extra: Record<string, string> = {},
): FastifyReply {
  return reply
    .code(status)
    .header('x-amzn-errortype', type)
    .header('content-type', 'application/json')
    .send({ Type: status >= 500 ? 'Service' : 'User', message, ...extra });
}
