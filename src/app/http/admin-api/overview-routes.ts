import { z } from 'zod';
import { getLag, getOverview } from '../../../admin/inspect/overview.js';
import { getStats } from '../../../admin/inspect/activity-stats.js';
import type { HttpRoutePlugin } from '../route-plugin.js';
import { durationParam, parse } from './api-support.js';

const statsQuery = z.object({ window: durationParam.default(15 * 60_000), step: durationParam.default(60_000) });

/** GET /api/overview (the chain at a glance), /api/lag (backlog per stage), /api/stats (rates and latency over time). */
export const overviewRoutes: HttpRoutePlugin = (app, { pool }) => {
  app.get('/overview', () => getOverview(pool));
  app.get('/lag', () => getLag(pool));
  app.get('/stats', (request) => {
    const q = parse(statsQuery, request.query, 'query');
    return getStats(pool, q.window, q.step);
  });
};
