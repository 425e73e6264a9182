import {
  decodeFrame,
  MittsyncError,
  type PageFetcher,
  type PageMsg,
  type PageReqMsg,
  type ResetMsg,
  validateServerMessage,
} from '@mittsync/core';

export interface HttpPageFetcherOptions {
  /** The relay's base URL, e.g. `http://127.0.0.1:8787`. */
  httpUrl: string;
  token?: string;
  getToken?: () => string | Promise<string>;
  /** Epoch of the catch-up the pages belong to; a different one on the relay answers `reset`. */
  epoch?: () => string | undefined;
  fetch?: typeof fetch;
}

/**
 * Fetches catch-up pages over HTTP (`GET /v1/buckets/:bucket/pages`), MessagePack and gzip,
 * for a replica's `fetchPage` option: downloads then run in parallel with the socket's live
 * stream instead of queueing behind it.
 *
 * @example
 * ```ts
 * const replica = await Replica.open({ storage, transport, fetchPage: createHttpPageFetcher({ httpUrl, token }) });
 * ```
 */
export function createHttpPageFetcher(opts: HttpPageFetcherOptions): PageFetcher {
  const doFetch = opts.fetch ?? fetch;
  return async (req: PageReqMsg): Promise<PageMsg | ResetMsg> => {
    const q = new URLSearchParams({
      since: String(req.since),
      limit: String(req.limit),
      reqId: String(req.reqId),
    });
    if (req.after !== undefined) q.set('after', req.after);
    if (req.until !== undefined) q.set('until', req.until);
    const epoch = opts.epoch?.();
    if (epoch !== undefined) q.set('epoch', epoch);
    const token = opts.getToken ? await opts.getToken() : opts.token;
    const res = await doFetch(`${opts.httpUrl}/v1/buckets/${encodeURIComponent(req.bucket)}/pages?${q}`, {
      headers: {
        accept: 'application/x-msgpack',
        'accept-encoding': 'gzip',
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      },
    });
    const msg = validateServerMessage(decodeFrame(new Uint8Array(await res.arrayBuffer())));
    if (msg.type === 'page' || msg.type === 'reset') return msg;
    if (msg.type === 'error') throw new MittsyncError(msg.code, msg.message);
    throw new MittsyncError('BAD_MESSAGE', `unexpected ${msg.type} from the page endpoint`);
  };
}
