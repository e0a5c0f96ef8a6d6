import { parseLastEventId } from '../../streams/stream-client.js';
import { DEFAULTS, TopicStreamHub, type TopicStreamOptions } from '../../streams/topic-stream.js';
import type { HttpRoutePlugin } from './route-plugin.js';
import { apiError } from './admin-api/api-support.js';

const TOPIC_NAME = /^[A-Za-z0-9_-]{1,256}$/;

/** The route plugin: GET /topics/:name/stream (one hub per server). */
export function topicStreamRoutes(options: TopicStreamOptions = {}): HttpRoutePlugin {
  return (app, context) => {
    const hub = new TopicStreamHub(context.pool, context.log, options);
    const unsubscribe = context.onWake(() => hub.wake());
    app.addHook('preClose', async () => {
      unsubscribe();
      await hub.close();
    });

    app.get<{ Params: { name: string }; Querystring: { lastEventId?: string } }>(
      '/topics/:name/stream',
      async (request, reply) => {
        const name = request.params.name;
        const from = parseLastEventId(request.headers['last-event-id'] ?? request.query.lastEventId);
        if (from === undefined) {
          return reply
            .code(400)
            .send(
              apiError(
                'bad_request',
                'Last-Event-ID (or ?lastEventId=) must be the id of an event of this stream: a non-negative integer.',
              ),
            );
        }
        const topics = (
          await context.pool.query<{ name: string }>('SELECT name FROM rowcast.topics ORDER BY name')
        ).rows.map((r) => r.name);
        if (!TOPIC_NAME.test(name) || !topics.includes(name)) {
          return reply.code(404).send({
            ...apiError(
              'not_found',
              `There is no topic "${name}"; known topics: ${topics.join(', ') || 'none'}. Declare it under "topics" in the rowcast config and run rowcast apply.`,
            ),
            topic: name,
            knownTopics: topics,
          });
        }
        const start = from ?? (await hub.now());
        reply.hijack();
        const res = reply.raw;
        request.raw.socket.setNoDelay(true);
        request.raw.socket.setTimeout(0);
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-store',
          connection: 'keep-alive',
          // Proxies (nginx) must not buffer the stream.
          'x-accel-buffering': 'no',
        });
        // Also sends the headers, so that clients see the stream open before the first message.
        res.write(`retry: ${options.retry ?? DEFAULTS.retry}\n\n`);
        hub.subscribe(name, res, start);
      },
    );
  };
}
