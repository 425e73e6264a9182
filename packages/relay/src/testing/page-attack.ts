import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { encodeHlc } from '@mittsync/core/model';

/**
 * The page-abuse attack, as seen in the wild, for tests and the bench: clients with a valid
 * read token send `GET /v1/buckets/<bucket>/pages?limit=10000` over raw TCP and never read the
 * responses. Node only (raw sockets, `/proc`).
 */

/** Pushes `count` entries of `valueBytes`-character strings into `bucket` over HTTP, in frames under 1 MiB. */
export async function fillBucket(opts: {
  httpUrl: string;
  bucket: string;
  token: string;
  sub: string;
  count: number;
  valueBytes: number;
}): Promise<void> {
  const perFrame = Math.max(1, Math.floor((900 * 1024) / (opts.valueBytes + 100)));
  const value = 'v'.repeat(opts.valueBytes);
  let seq = 0;
  while (seq < opts.count) {
    const ops = [];
    for (let i = 0; i < perFrame && seq < opts.count; i++) {
      seq++;
      ops.push({
        origin: opts.sub,
        originSeq: seq,
        key: `k${String(seq).padStart(6, '0')}`,
        kind: 'set',
        value,
        hlc: encodeHlc(Date.now(), 0, opts.sub),
      });
    }
    const res = await fetch(`${opts.httpUrl}/v1/buckets/${encodeURIComponent(opts.bucket)}/ops`, {
      method: 'POST',
      headers: { authorization: `Bearer ${opts.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ ops }),
    });
    if (res.status !== 200) throw new Error(`push failed: ${res.status} ${await res.text()}`);
  }
}

/** What one attacking request got back, as far as it looked. */
export interface AttackAnswer {
  /** HTTP status, once the status line arrived (undefined while nothing came back). */
  status: number | undefined;
  /** The `Retry-After` header, if any. */
  retryAfter: string | undefined;
  /** The error code of a refusal (JSON body), if one arrived. */
  code: string | undefined;
}

/** A running attack: sockets held open, never read past their response head. */
export interface PageAttack {
  /** One per request sent so far. */
  answers: AttackAnswer[];
  /** Stops sending and destroys every socket. */
  stop(): void;
}

/**
 * Starts `attackers` clients that each send a page request for the whole of `bucket` on a new
 * socket every `everyMs` (once if not given), keep every socket open, and never read a
 * response body: a socket is read only until the status line and headers of a refusal arrive,
 * then paused. A 200 is never read past its first bytes.
 */
export function startPageAttack(opts: {
  httpUrl: string;
  bucket: string;
  token: string;
  attackers: number;
  everyMs?: number;
  /** Send `Accept-Encoding: gzip` from every other attacker. */
  gzip?: boolean;
}): PageAttack {
  const url = new URL(opts.httpUrl);
  const sockets = new Set<Socket>();
  const answers: AttackAnswer[] = [];
  const timers: ReturnType<typeof setInterval>[] = [];
  let stopped = false;
  const send = (i: number) => {
    if (stopped) return;
    const answer: AttackAnswer = { status: undefined, retryAfter: undefined, code: undefined };
    answers.push(answer);
    const s = connect(Number(url.port), url.hostname);
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    let head = '';
    s.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(head);
      if (m?.[1] !== undefined) answer.status = Number(m[1]);
      if (answer.status === 200) {
        // The attack: never read the page.
        s.pause();
        return;
      }
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      answer.retryAfter = /\r\nretry-after: *([^\r]*)/i.exec(head)?.[1];
      // JSON or MessagePack (`code` then a fixstr header byte).
      answer.code = /code(?:":"|[\xa0-\xbf])([A-Z_]+)/.exec(head)?.[1];
    });
    s.write(
      `GET /v1/buckets/${encodeURIComponent(opts.bucket)}/pages?limit=10000 HTTP/1.1\r\n` +
        `host: ${url.host}\r\nauthorization: Bearer ${opts.token}\r\n` +
        (opts.gzip === true && i % 2 === 1 ? 'accept-encoding: gzip\r\n' : '') +
        '\r\n',
    );
  };
  for (let i = 0; i < opts.attackers; i++) {
    send(i);
    if (opts.everyMs !== undefined) timers.push(setInterval(() => send(i), opts.everyMs));
  }
  return {
    answers,
    stop: () => {
      stopped = true;
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.destroy();
    },
  };
}

/** Resident set size of process `pid` in MB (Linux, from `/proc`); undefined elsewhere. */
export function rssMb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m?.[1] === undefined ? undefined : Number(m[1]) / 1024;
  } catch {
    return undefined;
  }
}
