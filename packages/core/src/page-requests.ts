import type { Env } from './env';
import { MittsyncError } from './errors';
import type { ClientMessage, PageMsg, PageReqMsg, ResetMsg } from './protocol';

/** Fetches one catch-up page some other way than the socket (HTTP, tests). */
export type PageFetcher = (req: PageReqMsg) => Promise<PageMsg | ResetMsg>;

interface PendingPage {
  resolve(msg: PageMsg | ResetMsg): void;
  reject(err: MittsyncError): void;
  timer: unknown;
}

/**
 * Catch-up page requests sent on the relay socket, matched to their answers by `reqId`. A
 * request that gets no answer within the timeout fails with `TIMEOUT`; an answer that comes
 * after that (to a request since retried) is ignored.
 */
export class PageRequests {
  private readonly pending = new Map<number, PendingPage>();

  constructor(
    private readonly env: Env,
    private readonly send: (msg: ClientMessage) => void,
    private readonly timeoutMs: number,
  ) {}

  /** Sends `req` and resolves with its answer. */
  fetch(req: PageReqMsg): Promise<PageMsg | ResetMsg> {
    return new Promise((resolve, reject) => {
      const timer = this.env.setTimeout(() => {
        this.pending.delete(req.reqId);
        reject(new MittsyncError('TIMEOUT', `page ${req.reqId} timed out`));
      }, this.timeoutMs);
      this.pending.set(req.reqId, { resolve, reject, timer });
      this.send(req);
    });
  }

  /** Settles request `reqId` with its page. */
  settle(reqId: number, msg: PageMsg): void {
    const p = this.pending.get(reqId);
    if (p === undefined) return; // late answer to a retried request
    this.pending.delete(reqId);
    this.env.clearTimeout(p.timer);
    p.resolve(msg);
  }

  /** Fails request `reqId` (the relay answered it with an error). */
  reject(reqId: number, err: MittsyncError): void {
    const p = this.pending.get(reqId);
    if (p === undefined) return;
    this.pending.delete(reqId);
    this.env.clearTimeout(p.timer);
    p.reject(err);
  }

  /** Fails every request in flight (the connection or the replica closed). */
  rejectAll(err: MittsyncError): void {
    for (const [id, p] of this.pending) {
      this.env.clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
  }
}
