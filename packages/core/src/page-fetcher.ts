import { decodeFrame } from './codec';
import { MittsyncError } from './errors';
import type { PageMsg, PageReqMsg, ResetMsg } from './protocol';
import type { PageFetcher } from './replica';
import { validateServerMessage } from './validate';

/**
 * The part of `fetch` the page fetcher uses. Every runtime's global `fetch` fits; core declares
 * its own shape because it compiles without DOM or Node types.
 */
export type FetchLike = (
  url: string,
  init: { headers: Record<string, string> },
) => Promise<{ arrayBuffer(): Promise<ArrayBuffer> }>;

export interface HttpPageFetcherOptions {
  /** The relay's base URL, e.g. `http://127.0.0.1:8787`. */
  httpUrl: string;
  token?: string;
  getToken?: () => string | Promise<string>;
  /** Epoch of the catch-up the pages belong to; a different one on the relay answers `reset`. */
  epoch?: () => string | undefined;
  /** The `fetch` to use (default: the global one). */
  fetch?: FetchLike;
}

function globalFetch(): FetchLike {
  const f = (globalThis as { fetch?: FetchLike }).fetch;
  if (f === undefined) throw new MittsyncError('CLOSED', 'no global fetch here: pass the fetch option');
  return f;
}

/** A query string, encoded as `URLSearchParams` would (core has no DOM types to use it). */
function query(params: Record<string, string | undefined>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined) parts.push(`${formEncode(k)}=${formEncode(v)}`);
  }
  return parts.join('&');
}

function formEncode(s: string): string {
  return encodeURIComponent(s)
    .replace(/%20/g, '+')
    .replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
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
  const doFetch = opts.fetch ?? globalFetch();
  return async (req: PageReqMsg): Promise<PageMsg | ResetMsg> => {
    const q = query({
      since: String(req.since),
      limit: String(req.limit),
      reqId: String(req.reqId),
      after: req.after,
      until: req.until,
      epoch: opts.epoch?.(),
      spec: req.spec === undefined ? undefined : JSON.stringify(req.spec),
    });
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
