import type { Dispatcher } from 'undici';
import { BodyStart } from '../../../model/attempt-log.js';

/** What came back from a POST: the status, and, when asked for, the headers and the start of the body. */
export interface PostResponse {
  status: number;
  headers?: Record<string, string | string[] | undefined>;
  body?: { body: string; bodyTruncated: boolean };
}

/** The attempt took longer than its deadline. */
export class PostTimeoutError extends Error {}

/**
 * One POST through `dispatcher` (undici's dispatch API): `keep(status)` says whether the response's headers and the
 * first KB of its body are wanted (otherwise the body is read and dropped). This is the sink's hot path: undici's
 * `request()` builds a body stream and an abort signal per call, which cost about three times the HTTP exchange
 * itself (bench/probes/sink-ceiling.ts).
 */
export function httpPost(
  dispatcher: Dispatcher,
  target: { origin: string; path: string },
  request: { headers: Record<string, string>; body: string; timeoutMs: number; signal: AbortSignal },
  keep: (status: number) => boolean,
): Promise<PostResponse> {
  return new Promise((resolve, reject) => {
    let controller: Dispatcher.DispatchController | null = null;
    let stopped: Error | null = null;
    let response: PostResponse | null = null;
    let start: BodyStart | null = null;
    const stop = (reason: Error) => {
      stopped ??= reason;
      controller?.abort(reason);
    };
    // One timer for the whole attempt (headersTimeout and bodyTimeout below only bound each wait).
    const timer = setTimeout(
      () => stop(new PostTimeoutError(`timed out after ${request.timeoutMs} ms`)),
      request.timeoutMs,
    );
    const onShutdown = () => stop(new Error('aborted: rowcast is shutting down'));
    const stopOnAbort = onAbort(request.signal, onShutdown);
    const settle = (err: Error | null) => {
      clearTimeout(timer);
      stopOnAbort.delete(onShutdown);
      if (err) reject(stopped ?? err);
      else resolve(start ? { ...response!, body: start.result() } : response!);
    };
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (stopped) c.abort(stopped);
      },
      onResponseStart(_c, status, headers) {
        // 1xx informational responses come before the real one.
        if (status < 200) return;
        response = keep(status) ? { status, headers } : { status };
        if (response.headers) start = new BodyStart();
      },
      onResponseData(_c, chunk) {
        start?.add(chunk);
      },
      onResponseEnd() {
        settle(response ? null : new Error('the response ended before its status line'));
      },
      onResponseError(_c, err) {
        settle(err);
      },
    };
    try {
      dispatcher.dispatch(
        {
          origin: target.origin,
          path: target.path,
          method: 'POST',
          headers: request.headers,
          body: request.body,
          headersTimeout: request.timeoutMs,
          bodyTimeout: request.timeoutMs,
        },
        handler,
      );
    } catch (err) {
      settle(err as Error);
    }
  });
}

/**
 * The callbacks of a signal's one listener. Every attempt watches the same shutdown signal: an EventTarget checks
 * each new listener against all it holds, so a listener per attempt cost O(attempts in flight) per attempt.
 */
const aborts = new WeakMap<AbortSignal, Set<() => void>>();

/** Registers `callback` for the signal's abort, as addEventListener would; delete it from the set when done. */
function onAbort(signal: AbortSignal, callback: () => void): Set<() => void> {
  let callbacks = aborts.get(signal);
  if (!callbacks) {
    const set = new Set<() => void>();
    aborts.set(signal, (callbacks = set));
    signal.addEventListener('abort', () => set.forEach((f) => f()), { once: true });
  }
  callbacks.add(callback);
  return callbacks;
}
