/**
 * Progress of a long CLI operation on stderr (stdout keeps the result, for scripts): on a terminal one line
 * rewritten in place; elsewhere (CI logs, pipes) plain lines, at most one per second, only when asked (--progress).
 */
export interface Progress {
  update(line: string): void;
  /** Ends the progress line (the final state stays visible). */
  done(): void;
}

const QUIET: Progress = { update() {}, done() {} };

export function progress(flag: boolean | undefined, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (stream.isTTY) {
    let shown = false;
    return {
      update(line) {
        stream.write(`\r\x1b[2K${line}`);
        shown = true;
      },
      done() {
        if (shown) stream.write('\n');
        shown = false;
      },
    };
  }
  if (!flag) return QUIET;
  let last = 0;
  let pending: string | null = null;
  return {
    update(line) {
      pending = line;
      if (Date.now() - last < 1000) return;
      stream.write(`${line}\n`);
      last = Date.now();
      pending = null;
    },
    done() {
      if (pending !== null) stream.write(`${pending}\n`);
      pending = null;
    },
  };
}
