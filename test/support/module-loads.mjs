// `node --import` this file: the process writes "module-load <url>" to stderr for each module the ESM loader loads
// (a CommonJS package shows as its entry point), so that a test can tell which libraries a process holds.
import { register } from 'node:module';

const HOOKS = `import { writeSync } from 'node:fs';
export async function load(url, context, next) {
  writeSync(2, 'module-load ' + url + '\\n');
  return next(url, context);
}`;

register(`data:text/javascript,${encodeURIComponent(HOOKS)}`);
