import type { ClientMessage, PageMsg, PageReqMsg, Transport, TransportHandlers } from '@mittsync/core';

interface Sent {
  key: string;
  gen: number;
  at: number;
}

/**
 * Works around a race in the core's parallel catch-up: a range is marked idle as soon as its
 * page arrives, before the page is merged, so with a store slower than memory another range
 * finishing first can request the same page again; its entries then count twice in the
 * bucket checksum (a mismatch and a needless re-join). This wrapper answers such a repeat
 * locally with an empty page that ends where the first one did, which is exactly what the
 * merge of the first records. That answer is held until the next storage commit completes (or
 * a short timer fires): answering at once would free the range again before the first page's
 * merge ran, and the core would ask again, and again.
 *
 * It only does so for a request identical to one (same bucket, since, after, until) that was
 * answered within the same subscription (every new catch-up starts with a `sub`, which clears
 * what was remembered) and quickly enough that the core still accepted the answer (well within
 * its request timeout). A real retry after a lost answer never matches: nothing was answered.
 *
 * Remove once the core keeps a range busy until its page is merged.
 */
export class PageDedupeTransport implements Transport {
  private readonly gen = new Map<string, number>();
  private readonly sent = new Map<number, Sent>();
  private readonly answered = new Map<string, string | null>();
  private handlers: TransportHandlers | null = null;
  private held: PageMsg[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly inner: Transport,
    /** Answers slower than this are not remembered (the core may have given up on them). */
    private readonly trustWithinMs: number,
  ) {}

  private static key(m: PageReqMsg, gen: number): string {
    return `${m.bucket}\u0000${gen}\u0000${m.since}\u0000${m.after ?? ''}\u0000${m.until ?? ''}`;
  }

  connect(handlers: TransportHandlers): void {
    this.handlers = handlers;
    this.sent.clear();
    this.answered.clear();
    this.held = [];
    this.inner.connect({
      open: () => handlers.open(),
      close: (info) => handlers.close(info),
      message: (msg) => {
        if (msg.type === 'page') this.remember(msg);
        handlers.message(msg);
      },
    });
  }

  private remember(msg: PageMsg): void {
    const s = this.sent.get(msg.reqId);
    if (s === undefined) return;
    this.sent.delete(msg.reqId);
    if (s.gen === (this.gen.get(msg.bucket) ?? 0) && performance.now() - s.at < this.trustWithinMs) {
      this.answered.set(s.key, msg.next);
    }
  }

  send(msg: ClientMessage): void {
    if (msg.type === 'sub') {
      this.gen.set(msg.bucket, (this.gen.get(msg.bucket) ?? 0) + 1);
    } else if (msg.type === 'pageReq') {
      const gen = this.gen.get(msg.bucket) ?? 0;
      const key = PageDedupeTransport.key(msg, gen);
      if (this.answered.has(key)) {
        const page: PageMsg = {
          type: 'page',
          bucket: msg.bucket,
          reqId: msg.reqId,
          entries: [],
          next: this.answered.get(key) ?? null,
        };
        this.held.push(page);
        this.timer ??= setTimeout(() => this.release(), 50);
        return;
      }
      this.sent.set(msg.reqId, { key, gen, at: performance.now() });
    }
    this.inner.send(msg);
  }

  /**
   * Delivers the held answers; called after each storage commit (on a later task, so the
   * merge that committed has recorded its progress first).
   */
  release(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const held = this.held;
    this.held = [];
    for (const page of held) this.handlers?.message(page);
  }

  close(): void {
    this.held = [];
    this.inner.close();
  }
}
