import {
  type AckMsg,
  decodeFrame,
  encodeFrame,
  isErrorCode,
  MittsyncError,
  type Op,
  type PageMsg,
  validateServerMessage,
} from '@mittsync/core';
import { decodeJwt } from 'jose';
import type { BucketInfo } from '../../relay';

const MSGPACK = 'application/x-msgpack';

/** Where the data commands (`export`, `import`, `inspect`) reach the relay, and as whom. */
export interface RelayTarget {
  /** The relay's HTTP base URL (`http://127.0.0.1:8787`). */
  relay: string;
  /** A bearer token (JWT); without one, `dev` asks a dev relay for one. */
  token?: string | undefined;
  /** Ask the relay's dev token endpoint (`/v1/dev/token`, dev relays on loopback only). */
  dev?: boolean | undefined;
  /** With `dev`: renew this earlier dev token's replica instead of getting a new one. */
  renew?: string | undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The one-line reason a request never got an answer (`ECONNREFUSED`, `ENOTFOUND`...). */
function networkReason(e: unknown): string {
  const cause = (e as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return cause.message;
  return e instanceof Error ? e.message : String(e);
}

/**
 * The relay's HTTP API as the CLI uses it: bucket info, pages and pushes with a bearer token.
 * Every failure is a {@link MittsyncError} whose message says what to do: an unreachable relay
 * is `CLOSED`, a refused token `UNAUTHENTICATED` / `TOKEN_EXPIRED`, a missing scope `FORBIDDEN`.
 * Requests refused for load (429, 503) are retried with backoff.
 */
export class RelayClient {
  /** The token's subject: the replicaId an import writes as. */
  readonly subject: string;
  /** The token, when it came from a dev relay's token endpoint (an import keeps it to resume as the same replica). */
  devToken: string | undefined;
  private readonly base: string;
  private readonly identity: boolean;

  private constructor(
    base: string,
    private readonly token: string,
  ) {
    this.base = base;
    this.subject = RelayClient.subjectOf(token) ?? '';
    // Compressing pages costs more than it saves on the loopback interface.
    this.identity = /^(127\.|localhost$|\[::1\]$)/.test(new URL(base).hostname);
  }

  /** Resolves the token (given, from the environment, or a dev token) and checks the URL. */
  static async connect(target: RelayTarget): Promise<RelayClient> {
    let url: URL;
    try {
      url = new URL(target.relay);
    } catch {
      throw new MittsyncError('BAD_MESSAGE', `--relay must be an http(s) URL, got ${target.relay}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new MittsyncError('BAD_MESSAGE', `--relay must be an http(s) URL, got ${target.relay}`);
    const base = url.toString().replace(/\/+$/, '');
    if (target.token !== undefined && target.token !== '') return new RelayClient(base, target.token);
    if (target.dev !== true) {
      throw new MittsyncError(
        'UNAUTHENTICATED',
        'no token: pass --token <jwt> (or set MITTSYNC_TOKEN), or --dev for a dev relay',
      );
    }
    let devUrl = `${base}/v1/dev/token`;
    const headers: Record<string, string> = {};
    const renewSub = target.renew === undefined ? undefined : RelayClient.subjectOf(target.renew);
    if (target.renew !== undefined && renewSub !== undefined) {
      devUrl += `?sub=${encodeURIComponent(renewSub)}`;
      headers.authorization = `Bearer ${target.renew}`;
    }
    const res = await RelayClient.fetchOrFail(base, devUrl, { headers });
    if (res.status === 404) {
      throw new MittsyncError(
        'UNAUTHENTICATED',
        `${base} is not a dev relay (no /v1/dev/token): pass --token`,
      );
    }
    if (!res.ok) throw await RelayClient.errorOf(res, 'dev token');
    const body = (await res.json()) as { token?: unknown };
    if (typeof body.token !== 'string')
      throw new MittsyncError('INTERNAL', 'the dev token endpoint sent no token');
    const client = new RelayClient(base, body.token);
    client.devToken = body.token;
    return client;
  }

  /** The subject of a JWT, without verifying it (the relay does). */
  static subjectOf(token: string): string | undefined {
    try {
      const sub = decodeJwt(token).sub;
      return typeof sub === 'string' ? sub : undefined;
    } catch {
      return undefined;
    }
  }

  private static async fetchOrFail(base: string, url: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(url, init);
    } catch (e) {
      throw new MittsyncError('CLOSED', `cannot reach the relay at ${base} (${networkReason(e)})`, {
        cause: e,
      });
    }
  }

  /** The relay's error answer as a MittsyncError, its message naming what was asked. */
  private static async errorOf(res: Response, what: string): Promise<MittsyncError> {
    let code: unknown;
    let message = `HTTP ${res.status}`;
    try {
      const bytes = new Uint8Array(await res.arrayBuffer());
      const json = /json/i.test(res.headers.get('content-type') ?? '');
      const body = (json ? JSON.parse(new TextDecoder().decode(bytes)) : decodeFrame(bytes)) as {
        code?: unknown;
        message?: unknown;
      };
      code = body.code;
      if (typeof body.message === 'string') message = body.message;
    } catch {
      // Not one of the relay's errors (a proxy's page): the status says enough.
    }
    const c = isErrorCode(code) ? code : res.status === 401 ? 'UNAUTHENTICATED' : 'INTERNAL';
    if (res.status === 401)
      return new MittsyncError(c, `the relay refused the token (${what}): ${message}`, {
        detail: { status: 401 },
      });
    return new MittsyncError(c, `${what}: ${message} (HTTP ${res.status} ${c})`, {
      detail: { status: res.status },
    });
  }

  /** One request with the token; 429 and 503 are retried (up to about a minute in all). */
  private async request(path: string, what: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set('authorization', `Bearer ${this.token}`);
    if (this.identity) headers.set('accept-encoding', 'identity');
    let delay = 50;
    for (let attempt = 0; ; attempt++) {
      const res = await RelayClient.fetchOrFail(this.base, `${this.base}${path}`, { ...init, headers });
      if ((res.status === 429 || res.status === 503) && attempt < 40) {
        const after = Number(res.headers.get('retry-after'));
        await res.body?.cancel();
        await sleep(Number.isFinite(after) && after > 0 ? Math.min(after * 1000, 5000) : delay);
        delay = Math.min(delay * 2, 2000);
        continue;
      }
      if (!res.ok) throw await RelayClient.errorOf(res, what);
      return res;
    }
  }

  /** `GET /healthz` (no token needed). */
  async health(): Promise<{ ok: boolean; connections?: number; residentBuckets?: number }> {
    const res = await RelayClient.fetchOrFail(this.base, `${this.base}/healthz`, {});
    return (await res.json()) as { ok: boolean };
  }

  /** The bucket's checkpoint and size (`GET /v1/buckets/<bucket>/info`). */
  async info(bucket: string): Promise<BucketInfo> {
    const res = await this.request(`/v1/buckets/${encodeURIComponent(bucket)}/info`, `bucket ${bucket}`);
    return (await res.json()) as BucketInfo;
  }

  /** Like {@link info}, failing with `NOT_FOUND` for a bucket nothing was ever written to. */
  async existing(bucket: string): Promise<BucketInfo> {
    const info = await this.info(bucket);
    if (!info.exists) {
      throw new MittsyncError(
        'NOT_FOUND',
        `bucket ${bucket} not found on ${this.base} (nothing was ever written to it)`,
      );
    }
    return info;
  }

  /** One page of every entry (tombstones included) with `after < key`, in key order. */
  async page(bucket: string, after: string | undefined, limit: number): Promise<PageMsg> {
    const q = new URLSearchParams({ since: '0', limit: String(limit) });
    if (after !== undefined) q.set('after', after);
    const res = await this.request(
      `/v1/buckets/${encodeURIComponent(bucket)}/pages?${q}`,
      `bucket ${bucket}`,
      {
        headers: { accept: MSGPACK },
      },
    );
    const msg = validateServerMessage(decodeFrame(new Uint8Array(await res.arrayBuffer())));
    if (msg.type !== 'page') throw new MittsyncError('BAD_MESSAGE', `expected a page, got ${msg.type}`);
    return msg;
  }

  /** Pushes ops (this subject's, in originSeq order) and resolves with the relay's ack. */
  async push(bucket: string, ops: Op[]): Promise<AckMsg> {
    const body = encodeFrame({ type: 'push', bucket, ops });
    const res = await this.request(`/v1/buckets/${encodeURIComponent(bucket)}/ops`, `bucket ${bucket}`, {
      method: 'POST',
      headers: { 'content-type': MSGPACK, accept: MSGPACK },
      body: body as Uint8Array<ArrayBuffer>,
    });
    const msg = validateServerMessage(decodeFrame(new Uint8Array(await res.arrayBuffer())));
    if (msg.type !== 'ack') throw new MittsyncError('BAD_MESSAGE', `expected an ack, got ${msg.type}`);
    return msg;
  }
}
