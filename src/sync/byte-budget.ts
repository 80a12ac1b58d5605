/**
 * Bytes shared by concurrent users: a user waits while others hold bytes and its own would go over the limit; one
 * user always goes, however many bytes it needs. A send activity bounds the payloads of its batches in flight so.
 *
 *   const budget = new ByteBudget(8 * 1024 * 1024);
 *   await budget.acquire(bytes);
 *   try { await send(); } finally { budget.release(bytes); }
 */
export class ByteBudget {
  private used = 0;
  private waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  /** Takes `bytes` once they fit (at once when nothing is held: one user always goes). */
  async acquire(bytes: number): Promise<void> {
    while (this.used > 0 && this.used + bytes > this.limit) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    this.used += bytes;
  }

  /** Gives `bytes` back and lets the waiting users try again. */
  release(bytes: number): void {
    this.used -= bytes;
    for (const wake of this.waiting.splice(0)) wake();
  }
}
