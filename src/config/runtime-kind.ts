import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import path from 'node:path';
import type { FunctionConfig } from './function-schema.js';

export type RuntimeKind = 'nodejs' | 'python' | 'provided';

/** "nodejs20.x" runs as nodejs, "python3.12" as python (the machine's python3), "provided.al2023" as provided. */
export function runtimeKind(runtime: string): RuntimeKind {
  if (runtime.startsWith('python')) return 'python';
  if (runtime.startsWith('provided')) return 'provided';
  return 'nodejs';
}

let pythonVersion: string | null | undefined;
/** The machine's python3 version ("Python 3.11.7"), or null when there is none; asked once. */
export function python3Version(): string | null {
  if (pythonVersion === undefined) {
    const probe = spawnSync('python3', ['--version'], { encoding: 'utf8', timeout: 10_000 });
    pythonVersion = probe.status === 0 ? (probe.stdout || probe.stderr).trim() : null;
  }
  return pythonVersion;
}

/**
 * Checks a python3 or provided function and resolves its paths against the config file's folder: `directory`
 * becomes absolute, and so does a provided function's `bootstrap`. Returns the problems found.
 */
export function resolveProcessRuntime(name: string, fn: FunctionConfig, baseDir: string): string[] {
  const kind = runtimeKind(fn.runtime);
  const problems: string[] = [];
  const directory = path.resolve(baseDir, fn.directory ?? '.');
  fn.directory = directory;
  if (!existsSync(directory))
    return [
      `functions.${name}.directory: ${directory} does not exist; give the folder of the function's code, relative to the config file.`,
    ];
  if (kind === 'python') {
    if (!python3Version())
      problems.push(
        `functions.${name}.runtime: "${fn.runtime}" needs python3 on the PATH, and there is none; install it (e.g. apt-get install python3) or use runtime "nodejs".`,
      );
    const m = /^(.+)\.([A-Za-z_][A-Za-z0-9_]*)$/.exec(fn.handler);
    if (!m) {
      problems.push(
        `functions.${name}.handler: "${fn.handler}" is not "module.function"; write e.g. "lambda_function.lambda_handler" for lambda_handler in ${path.join(directory, 'lambda_function.py')}.`,
      );
    } else {
      const module = m[1]!.replace(/\./g, '/');
      const candidates = [path.join(directory, `${module}.py`), path.join(directory, module, '__init__.py')];
      if (!candidates.some((c) => existsSync(c)))
        problems.push(
          `functions.${name}.handler: no module ${candidates[0]}; put the handler's module in the function's directory (${directory}), or set directory.`,
        );
    }
  } else if (kind === 'provided') {
    const bootstrap = path.resolve(directory, fn.bootstrap ?? 'bootstrap');
    fn.bootstrap = bootstrap;
    try {
      accessSync(bootstrap, constants.X_OK);
    } catch {
      problems.push(
        `functions.${name}.bootstrap: ${bootstrap} ${existsSync(bootstrap) ? 'is not executable; chmod +x it' : 'does not exist; write the executable that speaks the Runtime API there, or set bootstrap'}.`,
      );
    }
  }
  return problems;
}
