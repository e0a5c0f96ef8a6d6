import { randomUUID } from 'node:crypto';
import { type AwsConfig, awsSchema } from '../../config/aws-schema.js';
import type { HttpRoutePlugin } from './route-plugin.js';
import { errorXml, QueryParams, resultXml, SnsError } from '../../sns/query-protocol.js';
import { verifySigV4 } from '../../sns/sigv4-verify.js';
import { SnsOperations } from '../../sns/sns-operations.js';

/**
 * The SNS API on rowcast's HTTP server, where the AWS SDKs send it: `POST /` with a form body naming the Action
 * (awsQuery), signed with SigV4 by a key of aws.credentials. Public (no bearer token): the signature is the
 * authentication. Other methods and other bodies of `/` are not SNS's and fall through to the other routes.
 */

export interface SnsApiOptions {
  /** Entries per page of ListTopics and ListSubscriptions (SNS: 100); smaller in tests of pagination. */
  pageSize?: number;
}

/** Largest request body: a PublishBatch of 256 KiB, form-encoded. */
const BODY_LIMIT = 2 * 1024 * 1024;

/** access key id → secret, resolved from aws.credentials (a key whose environment variable is unset is left out). */
export function resolveCredentials(aws: AwsConfig, warn: (message: string) => void): Map<string, string> {
  const secrets = new Map<string, string>();
  for (const [id, secret] of Object.entries(aws.credentials ?? {})) {
    const value = typeof secret === 'string' ? secret : process.env[secret.env];
    if (value) secrets.set(id, value);
    else
      warn(
        `aws.credentials.${id}: environment variable ${typeof secret === 'string' ? '' : secret.env} is not set; requests signed with this key are refused until it is set and rowcast restarted.`,
      );
  }
  return secrets;
}

export function snsApiRoutes(options: SnsApiOptions = {}): HttpRoutePlugin {
  return (app, context) => {
    const aws = context.aws ?? awsSchema.parse({});
    const secrets = resolveCredentials(aws, (message) => context.log.warn(message));
    const sns = new SnsOperations({ pool: context.pool, aws, pageSize: options.pageSize ?? 100 });

    // The body as received: the signature covers its bytes.
    app.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: BODY_LIMIT },
      (_request, body, done) => done(null, body),
    );

    app.post('/', { config: { public: true } }, async (request, reply) => {
      const requestId = randomUUID();
      const answer = (status: number, xml: string) =>
        reply.code(status).header('content-type', 'text/xml').header('x-amzn-requestid', requestId).send(xml);
      const body = typeof request.body === 'string' ? request.body : '';
      const params = new QueryParams(body);
      const action = params.get('Action');
      try {
        if (!action)
          throw new SnsError(
            'MissingAction',
            'The request must contain the parameter Action (an SNS request is a form POST with Action=…&Version=2010-03-31).',
            400,
          );
        if (!secrets.size)
          throw new SnsError(
            'InvalidClientTokenId',
            'The SNS API has no credentials: add aws.credentials ({ "<access key id>": { env: "VARIABLE" } }) to rowcast\'s config and restart.',
            403,
          );
        const [path, query = ''] = request.url.split('?');
        const accessKeyId = await verifySigV4(
          {
            method: request.method,
            path: path!,
            query: Object.fromEntries(new URLSearchParams(query)),
            headers: request.headers,
            body,
          },
          secrets,
          'sns',
        );
        const operation = sns.operations[action];
        if (!operation)
          throw new SnsError(
            'InvalidAction',
            `The action ${action} is not valid for this endpoint: rowcast serves ${Object.keys(sns.operations).join(', ')} (docs/sns.md).`,
            400,
          );
        const result = await operation(params);
        context.log.debug({ action, accessKeyId }, 'sns api request');
        return answer(200, resultXml(action, result, requestId));
      } catch (err) {
        if (err instanceof SnsError) return answer(err.status, errorXml(err, requestId));
        context.log.error({ action, err: (err as Error).message }, 'sns api request failed');
        return answer(
          500,
          errorXml(new SnsError('InternalError', 'The request failed inside rowcast; see its log.', 500), requestId),
        );
      }
    });
  };
}
