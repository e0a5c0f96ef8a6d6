/*
 * An invocation's payload is text: JSON as Lambda's Invoke API and routing write it, or any text rowcast.invoke
 * was given. Handlers get an event made from it where they run, not on the main thread.
 */

/** The event a handler gets: the payload's JSON, or the text itself when it is not JSON. */
export function eventOf(payload: string): unknown {
  try {
    return JSON.parse(payload) as unknown;
  } catch {
    return payload;
  }
}

/**
 * The payload as the JSON event a runtime is sent: byte for byte when it is JSON, as Lambda passes it (integers
 * beyond 2^53, key order and number forms such as 1.50 reach the handler as written), else the text as a JSON string.
 */
export function payloadAsJson(payload: string): string {
  try {
    JSON.parse(payload);
    return payload;
  } catch {
    return JSON.stringify(payload);
  }
}
