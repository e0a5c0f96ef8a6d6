import { randomUUID } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import { parseArn, topicOfArn } from '../../model/arn.js';
import {
  confirmSubscription,
  TOKEN_LIFETIME_DAYS,
  tokenExpired,
  UnsubscribeLinks,
  unsubscribe,
} from '../../delivery/sns-envelope/confirmation.js';
import { signingCertificate } from '../../delivery/sns-envelope/signing-keys.js';
import type { HttpRoutePlugin } from './route-plugin.js';

const XMLNS = 'http://sns.amazonaws.com/doc/2010-03-31/';

const escapeXml = (text: string) => text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);

function xml(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply
    .code(status)
    .header('content-type', 'text/xml')
    .header('cache-control', 'no-store')
    .send(`<?xml version="1.0"?>\n${body}`);
}

/** SNS's error document (awsQuery), e.g. for a token that matches no subscription. */
function snsError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return xml(
    reply,
    status,
    `<ErrorResponse xmlns="${XMLNS}"><Error><Type>Sender</Type><Code>${code}</Code><Message>${escapeXml(message)}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
  );
}

/**
 * What SNS subscribers fetch from rowcast (docs/sns.md "Envelope and confirmation"), all without the bearer
 * token, since subscribers hold no rowcast credentials:
 * - GET /SimpleNotificationService-<32 hex>.pem: the certificate an envelope's SigningCertURL names (current or
 *   rotated out: messages signed before a rotation still verify);
 * - GET /sns/confirm?TopicArn=…&Token=…: an envelope's SubscribeURL, answered with SNS's ConfirmSubscriptionResponse;
 * - GET /sns/unsubscribe?SubscriptionArn=…&Signature=…: an envelope's UnsubscribeURL (its HMAC is the credential).
 */
export function snsEnvelopeRoutes(): HttpRoutePlugin {
  return async (app, { pool }) => {
    let links: Promise<UnsubscribeLinks> | null = null;

    app.get<{ Params: { certId: string } }>(
      '/SimpleNotificationService-:certId.pem',
      { config: { public: true } },
      async (req, reply) => {
        const pem = await signingCertificate(pool, req.params.certId);
        if (!pem)
          return reply.code(404).send({ error: 'not_found', message: 'No SNS signing certificate has this id.' });
        // A certificate never changes under its id.
        return reply
          .header('content-type', 'application/x-x509-ca-cert')
          .header('cache-control', 'public, max-age=86400, immutable')
          .send(pem);
      },
    );

    app.get<{ Querystring: { TopicArn?: string; Token?: string; AuthenticateOnUnsubscribe?: string } }>(
      '/sns/confirm',
      { config: { public: true } },
      async (req, reply) => {
        const { TopicArn: topicArn = '', Token: token = '' } = req.query;
        const topic = topicOfArn(topicArn);
        if (!topic)
          return snsError(
            reply,
            400,
            'InvalidParameter',
            'Invalid parameter: TopicArn (give the TopicArn of the SubscribeURL unchanged)',
          );
        // As SNS: AuthenticateOnUnsubscribe needs a signed request (the SNS API's ConfirmSubscription).
        if (req.query.AuthenticateOnUnsubscribe === 'true') {
          return snsError(
            reply,
            403,
            'AuthorizationError',
            'AuthenticateOnUnsubscribe=true needs a signed request: call ConfirmSubscription through the SNS API (POST /) with this Token',
          );
        }
        const subscription = await confirmSubscription(pool, topic, token);
        if (!subscription) {
          const message = (await tokenExpired(pool, topic, token))
            ? `Invalid token: it expired (confirmation tokens are valid for ${TOKEN_LIFETIME_DAYS} days); subscribe again for a new SubscriptionConfirmation`
            : 'Invalid token (it matches no subscription of this topic; a newer SubscriptionConfirmation replaces older tokens)';
          return snsError(reply, 400, 'InvalidParameter', message);
        }
        return xml(
          reply,
          200,
          `<ConfirmSubscriptionResponse xmlns="${XMLNS}"><ConfirmSubscriptionResult><SubscriptionArn>${escapeXml(`${topicArn}:${subscription}`)}</SubscriptionArn></ConfirmSubscriptionResult><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></ConfirmSubscriptionResponse>`,
        );
      },
    );

    app.get<{ Querystring: { SubscriptionArn?: string; Signature?: string } }>(
      '/sns/unsubscribe',
      { config: { public: true } },
      async (req, reply) => {
        const parsed = parseArn(req.query.SubscriptionArn ?? '');
        const [topic, subscription, extra] = parsed?.service === 'sns' ? parsed.resource.split(':') : [];
        links ??= UnsubscribeLinks.load(pool).catch((err: Error) => {
          links = null;
          throw err;
        });
        if (
          !topic ||
          !subscription ||
          extra !== undefined ||
          !(await links).verify(subscription, req.query.Signature)
        ) {
          return snsError(
            reply,
            403,
            'AuthorizationError',
            'This UnsubscribeURL is not valid; use the one of a message you received, unchanged',
          );
        }
        const known = (
          await pool.query<{ authenticate: boolean }>(
            `SELECT coalesce(sns_attributes->>'AuthenticateOnUnsubscribe' = 'true', false) AS authenticate FROM rowcast.subscriptions WHERE name = $1 AND topic = $2`,
            [subscription, topic],
          )
        ).rows[0];
        if (!known) return snsError(reply, 404, 'NotFound', 'Subscription does not exist');
        // Confirmed with AuthenticateOnUnsubscribe=true: only a signed Unsubscribe (the SNS API) removes it, as in SNS.
        if (known.authenticate)
          return snsError(
            reply,
            403,
            'AuthorizationError',
            'This subscription was confirmed with AuthenticateOnUnsubscribe=true: unsubscribe it with a signed Unsubscribe request through the SNS API',
          );
        await unsubscribe(pool, subscription);
        return xml(
          reply,
          200,
          `<UnsubscribeResponse xmlns="${XMLNS}"><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></UnsubscribeResponse>`,
        );
      },
    );
  };
}
