import type { BucketStatus, ClientStatus, ReplicaView } from '@mittsync/peer';

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className !== undefined) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

const fmt = new Intl.NumberFormat('en-US');

/**
 * Fraction of a catch-up done, from what the status reports (1 when ready), or null when the
 * status gives nothing to measure it by (no expected total, no range finished yet).
 */
export function joinFraction(b: BucketStatus): number | null {
  if (b.phase === 'ready' || b.ready) return 1;
  const p = b.progress as BucketStatus['progress'] & { total?: number };
  if (typeof p.total === 'number' && p.total > 0) return Math.min(1, p.entries / p.total);
  if (p.ranges > 0 && p.rangesDone > 0) return p.rangesDone / p.ranges;
  return b.phase === 'idle' ? 0 : null;
}

const PHASE_TEXT: Record<BucketStatus['phase'], string> = {
  idle: 'idle',
  joining: 'joining',
  resuming: 'resuming',
  flushing: 'flushing',
  ready: 'ready',
  detached: 'detached copy',
};

const POLICY_TEXT: Record<BucketStatus['policy'], string> = {
  replica: 'replica (read-write, live)',
  readOnly: 'read-only (live, writes refused)',
  copy: 'copy (detached, refreshed on demand; writes stay local)',
};

/** A replication spec in a few words: `keys user-42/*, [a, b); fields name, qty`. */
function specText(spec: NonNullable<BucketStatus['spec']>): string {
  const keys = [
    ...(spec.prefixes ?? []).map((p) => `${p}*`),
    ...(spec.ranges ?? []).map((r) => `[${r.gte ?? ''}, ${r.lt ?? '∞'})`),
  ];
  const parts = [
    keys.length === 0 && spec.prefixes === undefined && spec.ranges === undefined
      ? 'all keys'
      : `keys ${keys.join(', ') || 'none'}`,
  ];
  if (spec.fields !== undefined) parts.push(`fields ${spec.fields.join(', ')}`);
  return parts.join('; ');
}

/** One replica of a bucket as the relay lists it (`GET /v1/buckets/<bucket>/replicas`). */
export type RelayReplica = ReplicaView;

/** One line of the inspector's event log. */
export interface LogLine {
  at: Date;
  text: string;
  kind: 'info' | 'good' | 'warn' | 'bad';
}

/**
 * The inspector: what the replica behind this tab is doing, from the status the worker pushes
 * (replica id, hosting, connection, each bucket's phase with download progress and the mitt,
 * checkpoint, pending outbox, last error) and a log of what changed.
 */
export class Inspector {
  readonly element: HTMLElement;
  private readonly summary: HTMLElement;
  private readonly bucketsEl: HTMLElement;
  private readonly logEl: HTMLElement;
  private readonly lines: LogLine[] = [];
  private last: ClientStatus | null = null;
  private frame = 0;
  /** Each bucket's replicas as the relay last listed them, or why they could not be listed. */
  private readonly replicas = new Map<string, RelayReplica[] | string>();

  constructor(private readonly info: { db: string; offlineByUser: () => boolean; actions: HTMLElement[] }) {
    this.element = el('aside', 'inspector');
    this.element.dataset.testid = 'inspector';
    const title = el('header', 'inspector-head');
    title.append(el('h2', undefined, 'Inspector'), ...info.actions);
    this.element.append(title);
    this.summary = el('dl', 'summary');
    this.bucketsEl = el('div', 'buckets');
    const logHead = el('h3', undefined, 'Events');
    this.logEl = el('ol', 'log');
    this.element.append(this.summary, this.bucketsEl, logHead, this.logEl);
    this.render(null);
  }

  log(text: string, kind: LogLine['kind'] = 'info'): void {
    this.lines.unshift({ at: new Date(), text, kind });
    if (this.lines.length > 60) this.lines.pop();
    const li = el('li', kind);
    li.append(el('time', undefined, this.lines[0]?.at.toLocaleTimeString() ?? ''), ` ${text}`);
    this.logEl.prepend(li);
    while (this.logEl.children.length > 60) this.logEl.lastElementChild?.remove();
  }

  /** Renders a new status and logs what changed since the previous one. */
  update(s: ClientStatus): void {
    // Every status is diffed (a short phase must still be logged); drawing waits for a frame.
    this.diff(this.last, s);
    this.last = s;
    this.refresh();
  }

  /** The relay's list of `bucket`'s replicas (or why it could not be read). */
  setReplicas(bucket: string, replicas: RelayReplica[] | string): void {
    this.replicas.set(bucket, replicas);
    this.refresh();
  }

  /** Redraws on the next frame. */
  refresh(): void {
    if (this.frame !== 0) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render(this.last);
    });
  }

  private diff(prev: ClientStatus | null, s: ClientStatus): void {
    if (prev === null || prev.connection !== s.connection) {
      this.log(`relay connection ${s.connection}`, s.connection === 'open' ? 'good' : 'warn');
    }
    if (s.error !== null && s.error.message !== prev?.error?.message) {
      this.log(`${s.error.code}: ${s.error.message}`, 'bad');
    }
    for (const b of s.buckets) {
      const p = prev?.buckets.find((x) => x.bucket === b.bucket);
      if (p?.phase !== b.phase) {
        this.log(`${b.bucket}: ${PHASE_TEXT[b.phase]}`, b.phase === 'ready' ? 'good' : 'info');
      }
      if (b.lastError !== null && b.lastError.message !== p?.lastError?.message) {
        this.log(`${b.bucket}: ${b.lastError.code}: ${b.lastError.message}`, 'bad');
      }
    }
  }

  private render(s: ClientStatus | null): void {
    const conn = this.info.offlineByUser() ? 'offline (by you)' : (s?.connection ?? 'starting');
    const rows: [string, string, string?][] = [
      ['Replica', s?.replicaId || '…', 'replica-id'],
      ['Device (database)', this.info.db],
      ['Hosted by', s === null ? '…' : hostingText(s.hosting), 'hosting'],
      ['Storage', s === null ? '…' : s.persistent ? 'IndexedDB' : 'memory only (not persisted)'],
      ['Relay', conn, 'connection'],
    ];
    if (s?.error) rows.push(['Storage error', `${s.error.code}: ${s.error.message}`, 'client-error']);
    this.summary.replaceChildren(
      ...rows.flatMap(([k, v, id]) => {
        const dd = el('dd', undefined, v);
        if (id !== undefined) dd.dataset.testid = id;
        if (id === 'connection') dd.className = `pill ${conn === 'open' ? 'ok' : 'warn'}`;
        return [el('dt', undefined, k), dd];
      }),
    );
    const cards = (s?.buckets ?? []).map((b) => this.bucketCard(b));
    if (cards.length === 0) cards.push(el('p', 'muted', 'No bucket open yet.'));
    this.bucketsEl.replaceChildren(...cards);
  }

  private bucketCard(b: BucketStatus): HTMLElement {
    const card = el('section', `bucket phase-${b.phase}`);
    card.dataset.bucket = b.bucket;
    const head = el('header');
    const badge = el('span', `badge ${b.phase}`, PHASE_TEXT[b.phase]);
    badge.dataset.testid = 'phase';
    head.append(el('strong', undefined, b.bucket), badge);
    card.append(head);

    const frac = joinFraction(b);
    const bar = el('div', frac === null ? 'progress busy' : 'progress');
    const fill = el('div', 'fill');
    if (frac !== null) fill.style.width = `${(frac * 100).toFixed(1)}%`;
    bar.append(fill);
    bar.title = frac === null ? 'downloading' : `${Math.round(frac * 100)}%`;
    const p = b.progress;
    const catchingUp = b.phase === 'joining' || b.phase === 'resuming' || b.phase === 'flushing';
    const progressText = catchingUp
      ? `${fmt.format(p.pages)} pages, ${fmt.format(p.entries)} entries downloaded; ranges ${p.rangesDone}/${p.ranges}`
      : b.ready
        ? 'complete'
        : 'not joined';
    card.append(bar, el('p', 'progress-text', progressText));

    const dl = el('dl');
    const add = (k: string, v: string, id?: string, cls?: string) => {
      const dd = el('dd', cls, v);
      if (id !== undefined) dd.dataset.testid = id;
      dl.append(el('dt', undefined, k), dd);
      return dd;
    };
    add('Mitt', mittText(b, catchingUp), 'mitt').title =
      'Live ops caught while the download runs, applied once it is done. Once ready, live ops ' +
      'pass through it only until they are written to storage.';
    add('Policy', POLICY_TEXT[b.policy], 'policy');
    if (b.spec !== undefined) add('Spec', specText(b.spec), 'spec');
    add('Checkpoint', fmt.format(b.checkpoint), 'checkpoint');
    add(
      b.policy === 'copy' ? 'Local fork writes' : 'Pending outbox',
      fmt.format(b.pending),
      'pending',
      b.pending > 0 && b.policy !== 'copy' ? 'warn' : undefined,
    );
    add('Checksum checks', fmt.format(b.verified), 'verified');
    add('Epoch', b.epoch ?? '-');
    add(
      'Last error',
      b.lastError === null ? 'none' : `${b.lastError.code}: ${b.lastError.message}`,
      'last-error',
      b.lastError === null ? undefined : 'bad',
    );
    card.append(dl);
    const reps = this.replicas.get(b.bucket);
    if (reps !== undefined) card.append(...this.replicaList(reps));
    return card;
  }

  /** Where the bucket's replicas are: the relay's records (id, policy, acknowledged checkpoint). */
  private replicaList(reps: RelayReplica[] | string): HTMLElement[] {
    const list = el('ul', 'replicas');
    list.dataset.testid = 'replicas';
    if (typeof reps === 'string') list.append(el('li', 'muted', reps));
    for (const r of typeof reps === 'string' ? [] : reps) {
      const state = r.connected
        ? 'connected'
        : r.dropped === true
          ? 'dropped (silent past retention)'
          : 'offline';
      const me = r.replicaId === this.last?.replicaId ? ' (this device)' : '';
      const li = el(
        'li',
        r.connected ? 'good' : 'muted',
        `${r.replicaId.slice(0, 12)}${me} · ${r.policy} · acked ${fmt.format(r.acked)} · ${state}`,
      );
      li.title = `last seen ${new Date(r.lastSeen).toLocaleString()}`;
      list.append(li);
    }
    return [el('h4', undefined, 'Replicas on the relay'), list];
  }
}

/**
 * What the mitt holds: while catching up, the live ops held back from the download; once
 * ready, it is empty but for a delivery on its way to storage, and says so.
 */
function mittText(b: BucketStatus, catchingUp: boolean): string {
  if (b.mitt.ops === 0) return 'empty';
  const held = `${fmt.format(b.mitt.ops)} ops, ${bytes(b.mitt.bytes)}`;
  return catchingUp ? `${held} held` : `${held} being applied`;
}

function hostingText(h: ClientStatus['hosting']): string {
  if (h === 'shared') return 'SharedWorker (all tabs of this device)';
  if (h === 'leader') return 'this tab’s worker (leader)';
  return 'the leader tab’s worker';
}
