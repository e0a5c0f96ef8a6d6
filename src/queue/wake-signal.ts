/**
 * A wake-up that is never lost: a kick that arrives while nobody waits is remembered, and the next wait()
 * returns at once.
 */
export class WakeSignal {
  private pending = false;
  private waiter: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;

  /** A kick is waiting to be taken by the next wait(). */
  get kicked(): boolean {
    return this.pending;
  }

  kick(): void {
    this.pending = true;
    const w = this.waiter;
    if (w) {
      this.waiter = null;
      w();
    }
  }

  /** Resolves on a kick or after ms. Returns true if it was kicked. */
  wait(ms: number): Promise<boolean> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      this.timer = setTimeout(() => {
        this.waiter = null;
        resolve(false);
      }, ms);
      this.waiter = () => {
        if (this.timer) clearTimeout(this.timer);
        this.pending = false;
        resolve(true);
      };
    });
  }
}
