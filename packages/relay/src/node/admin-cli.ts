import { parseArgs } from 'node:util';

const USAGE = `usage: mittsync admin <command> [options]

  buckets [--after <bucket>] [--limit <n>]     list buckets with sizes and replica counts
  bucket <bucket>                              one bucket: epoch, head, sizes, control, replicas
  replica <bucket> <replicaId>                 one replica: policy, spec, acknowledged checkpoint, last seen
  set <bucket> <in|out> <on|off>               allow or forbid replication in (pushes) or out (subscriptions)
  allow <bucket> <in|out> <principal>...       only these principals may replicate (sub:<id> or group:<name>);
                                               no principal: clear the allow list (everyone)
  deny <bucket> <in|out> <principal>...        these principals may not; no principal: clear the deny list
  reset <bucket> --yes                         give the bucket a new epoch: every replica re-joins

  --url <http url>      the relay (default http://127.0.0.1:8787, or env MITTSYNC_URL)
  --token <jwt>         an admin-scoped token (claim mittsync.admin: true), or env MITTSYNC_ADMIN_TOKEN
  --json                print the relay's JSON answer as it is
`;

class UsageError extends Error {}

function usage(message: string): never {
  throw new UsageError(message);
}

function direction(v: string | undefined): 'in' | 'out' {
  if (v !== 'in' && v !== 'out') usage('direction must be in or out');
  return v;
}

/** What one admin command asks of the relay. */
export function adminRequest(
  positionals: string[],
  after?: string,
  limit?: string,
): { method: string; path: string; body?: unknown } {
  const [cmd, bucket, ...rest] = positionals;
  const b = () => {
    if (bucket === undefined) usage(`${cmd} needs a bucket`);
    return `/v1/admin/buckets/${encodeURIComponent(bucket)}`;
  };
  switch (cmd) {
    case 'buckets': {
      const q = new URLSearchParams();
      if (after !== undefined) q.set('after', after);
      if (limit !== undefined) q.set('limit', limit);
      const qs = q.toString();
      return { method: 'GET', path: `/v1/admin/buckets${qs === '' ? '' : `?${qs}`}` };
    }
    case 'bucket':
      return { method: 'GET', path: b() };
    case 'replica': {
      const id = rest[0];
      if (id === undefined) usage('replica needs a bucket and a replicaId');
      return { method: 'GET', path: `${b()}/replicas/${encodeURIComponent(id)}` };
    }
    case 'set': {
      const dir = direction(rest[0]);
      const v = rest[1];
      if (v !== 'on' && v !== 'off') usage('set takes on or off');
      return { method: 'PUT', path: `${b()}/control`, body: { [dir]: { enabled: v === 'on' } } };
    }
    case 'allow':
    case 'deny': {
      const dir = direction(rest[0]);
      return { method: 'PUT', path: `${b()}/control`, body: { [dir]: { [cmd]: rest.slice(1) } } };
    }
    case 'reset':
      return { method: 'POST', path: `${b()}/reset` };
    default:
      return usage(cmd === undefined ? 'which command?' : `unknown admin command ${cmd}`);
  }
}

function age(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172_800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}

interface ReplicaLine {
  replicaId: string;
  policy: string;
  acked: number;
  lastSeen: number;
  connected?: boolean;
  dropped?: boolean;
}

/** A short human reading of an answer (`--json` prints it as it is). */
export function renderAnswer(cmd: string, a: Record<string, unknown>): string {
  const lines: string[] = [];
  if (cmd === 'buckets') {
    for (const b of (a.buckets as Record<string, unknown>[]) ?? []) {
      lines.push(
        `${b.bucket}\thead ${b.head}\tentries ${b.entries}\ttombstones ${b.tombstones}\treplicas ${b.replicas}`,
      );
    }
    if (a.next !== null && a.next !== undefined) lines.push(`(more: --after ${a.next})`);
    return lines.join('\n');
  }
  if (cmd === 'bucket') {
    lines.push(
      `${a.bucket}: epoch ${a.epoch}, head ${a.head}, entries ${a.entries}, tombstones ${a.tombstones}, horizon ${a.horizon}`,
    );
    lines.push(`control: ${JSON.stringify(a.control)}`);
    for (const r of (a.replicaList as ReplicaLine[]) ?? []) {
      const state = r.connected ? 'connected' : r.dropped ? 'dropped' : 'offline';
      lines.push(`  ${r.replicaId}\t${r.policy}\tacked ${r.acked}\t${state}\tseen ${age(r.lastSeen)}`);
    }
    return lines.join('\n');
  }
  return JSON.stringify(a, null, 2);
}

/** `mittsync admin ...`: calls the relay's admin API and prints the answer. Returns the exit code. */
export async function adminMain(
  argv: string[],
  out: (s: string) => void = (s) => process.stdout.write(s),
): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
    if (parsed.values.help === true) {
      out(USAGE);
      return 0;
    }
    const { values, positionals } = parsed;
    if (positionals[0] === 'reset' && values.yes !== true)
      usage("reset drops every replica's checkpoint: add --yes");
    const req = adminRequest(positionals, values.after, values.limit);
    const token = values.token ?? process.env.MITTSYNC_ADMIN_TOKEN;
    if (token === undefined) usage('an admin token is needed: --token or MITTSYNC_ADMIN_TOKEN');
    const base = (values.url ?? process.env.MITTSYNC_URL ?? 'http://127.0.0.1:8787').replace(/\/+$/, '');
    const res = await fetch(`${base}${req.path}`, {
      method: req.method,
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/json',
        ...(req.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(req.body === undefined ? {} : { body: JSON.stringify(req.body) }),
    });
    const answer = (await res.json()) as Record<string, unknown>;
    if (!res.ok) {
      process.stderr.write(`mittsync admin: ${res.status} ${answer.code ?? ''} ${answer.message ?? ''}\n`);
      return 1;
    }
    out(
      `${values.json === true ? JSON.stringify(answer, null, 2) : renderAnswer(positionals[0] ?? '', answer)}\n`,
    );
    return 0;
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`mittsync admin: ${(e as Error).message}\n\n${USAGE}`);
      return 2;
    }
    throw e;
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      after: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
      yes: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
