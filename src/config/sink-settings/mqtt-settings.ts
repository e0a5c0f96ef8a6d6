import { z } from 'zod';
import { optionsParser, secretRef, topicTemplate } from './settings-support.js';

/**
 * Options of an `mqtt` subscription: each message is published to an MQTT broker with QoS 1 (or 2) and counts as
 * delivered once the broker acknowledged it (PUBACK; PUBCOMP for QoS 2).
 *
 * QoS 0 is refused: it is fire-and-forget — the broker acknowledges nothing, so "delivered" would only mean
 * "written to a socket", and a message lost with a dropping connection would never be retried.
 *
 *   { topic: 'orders', protocol: 'mqtt', options: { url: 'mqtts://broker:8883', topic: 'rowcast/{topic}', qos: 1,
 *     username: 'rowcast', password: { env: 'MQTT_PASSWORD' } } }
 */

const MQTT_URL = /^(mqtts?|wss?):\/\/[^\s/@]+(\/[^\s]*)?$/;

/** MQTT topic names for PUBLISH: no wildcards, not empty, not one of the broker's own ("$SYS/…"). */
const publishTopic = topicTemplate(z.string().min(1, 'must not be empty').max(1024, 'at most 1024 characters'))
  // eslint-disable-next-line no-control-regex -- MQTT forbids NUL in topic names
  .refine((s) => !/[+#\u0000]/.test(s), {
    message: 'a topic to publish to has no wildcards ("+", "#"); e.g. "rowcast/{topic}"',
  })
  .refine((s) => !s.startsWith('$'), { message: 'topics starting with "$" are reserved for the broker' });

const QOS_HINT =
  'QoS 1 (at least once, the default) or 2 (exactly once); QoS 0 is not allowed: the broker does not acknowledge it, so rowcast could not tell a delivered message from a lost one';

export const mqttOptionsSchema = z.strictObject({
  /** The broker: mqtt:// (1883), mqtts:// (TLS, 8883), ws:// or wss:// (MQTT over WebSocket, with a path). Put credentials in username/password. */
  url: z
    .string({ error: 'a broker URL, e.g. "mqtt://broker:1883" or "mqtts://broker:8883"' })
    .regex(
      MQTT_URL,
      'a broker URL, "mqtt://host:1883", "mqtts://host:8883" or "wss://host/mqtt"; put credentials in username and password, not in the URL',
    )
    .refine((url) => URL.canParse(url), { message: 'not a valid URL' })
    .default('mqtt://127.0.0.1:1883'),
  /** The topic each message is published to; `{topic}` becomes the rowcast topic name. */
  topic: publishTopic.default('rowcast/{topic}'),
  qos: z
    .number({ error: QOS_HINT })
    .refine((q) => q === 1 || q === 2, { message: QOS_HINT })
    .transform((q) => q as 1 | 2)
    .default(1),
  /** Retained: the broker keeps the last message of the topic for subscribers that come later. */
  retain: z.boolean({ error: 'true or false' }).default(false),
  username: z.string().min(1, 'must not be empty').optional(),
  password: secretRef('MQTT_PASSWORD').optional(),
  /** 5 (MQTT 5, the default): message id, topic and subject travel as user properties too; 4: MQTT 3.1.1, the payload alone. */
  protocolVersion: z.union([z.literal(5), z.literal(4)], { error: '5 (MQTT 5) or 4 (MQTT 3.1.1)' }).default(5),
  /** Client ids are this prefix and random characters: each connection needs its own, or the broker drops the older one. */
  clientIdPrefix: z
    .string()
    .max(15, 'at most 15 characters (MQTT 3.1.1 brokers may refuse client ids longer than 23)')
    .regex(/^[A-Za-z0-9_-]*$/, 'letters, digits, "-" and "_" only')
    .default('rowcast-'),
});

export type MqttOptionsInput = z.input<typeof mqttOptionsSchema>;
export type MqttOptions = z.output<typeof mqttOptionsSchema>;

/** Validates a subscription's options; the error names each offending option ("options.qos: …"). */
export const parseMqttOptions = optionsParser('mqtt', mqttOptionsSchema, (options) =>
  options.password !== undefined && options.username === undefined
    ? 'options.username: required with a password'
    : undefined,
);
