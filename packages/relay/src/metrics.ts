/**
 * The relay's metrics, rendered in the Prometheus text format (version 0.0.4). Hand-written
 * rather than prom-client because the same app runs on workerd, where prom-client's Node
 * dependencies are not available; a handful of counters, gauges and one histogram is all we
 * need.
 */

import type { PageFlights } from './page-flights';

/** Commit latency histogram bounds, in seconds. */
const COMMIT_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

class Histogram {
  readonly counts = new Array<number>(COMMIT_BUCKETS.length).fill(0);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < COMMIT_BUCKETS.length; i++) {
      if (seconds <= (COMMIT_BUCKETS[i] as number)) {
        this.counts[i] = (this.counts[i] as number) + 1;
        return;
      }
    }
  }
}

/** Values read at scrape time (connections, resident buckets, queue depths). */
export interface MetricGauges {
  connections(): number;
  residentBuckets(): number;
  commitQueueDepth(): number;
  /** Bytes queued towards all sockets. */
  outboundQueueBytes(): number;
  /** The largest outbound queue of one socket. */
  maxOutboundQueueBytes(): number;
}

/** Counters the relay bumps as it works; rendered by {@link RelayMetrics.render}. */
export class RelayMetrics {
  opsIn = 0;
  opsApplied = 0;
  opsOut = 0;
  framesIn = 0;
  framesOut = 0;
  commits = 0;
  connectionsOpened = 0;
  httpRequests = 0;
  /** Sessions rebuilt from their sockets' attachments (edge: an object woken from hibernation). */
  restoredSessions = 0;
  /** Called after each group commit with its duration in ms (the edge relay's analytics sink). */
  onCommitObserved: ((ms: number) => void) | undefined;
  private readonly rejections = new Map<string, number>();
  private readonly commitLatency = new Histogram();
  gauges: MetricGauges | undefined;
  pageFlights: PageFlights | undefined;

  /** Counts one refused frame, request or connection, by error code. */
  reject(code: string): void {
    this.rejections.set(code, (this.rejections.get(code) ?? 0) + 1);
  }

  rejected(code: string): number {
    return this.rejections.get(code) ?? 0;
  }

  /** Records one group commit and how long it held the database, in ms. */
  commit(ms: number): void {
    this.commits++;
    this.commitLatency.observe(ms / 1000);
    this.onCommitObserved?.(ms);
  }

  /** The Prometheus exposition text. */
  render(): string {
    const out: string[] = [];
    const metric = (name: string, type: string, help: string, lines: string[]) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
    };
    const g = this.gauges;
    metric('mittsync_connections', 'gauge', 'Open WebSocket connections.', [
      `mittsync_connections ${g?.connections() ?? 0}`,
    ]);
    metric('mittsync_connections_opened_total', 'counter', 'WebSocket connections accepted.', [
      `mittsync_connections_opened_total ${this.connectionsOpened}`,
    ]);
    metric(
      'mittsync_restored_sessions_total',
      'counter',
      'Sessions rebuilt from their sockets after the relay woke from hibernation (edge).',
      [`mittsync_restored_sessions_total ${this.restoredSessions}`],
    );
    metric('mittsync_resident_buckets', 'gauge', 'Buckets whose host is in memory.', [
      `mittsync_resident_buckets ${g?.residentBuckets() ?? 0}`,
    ]);
    metric('mittsync_ops_in_total', 'counter', 'Ops received in push frames and requests.', [
      `mittsync_ops_in_total ${this.opsIn}`,
    ]);
    metric('mittsync_ops_applied_total', 'counter', 'Ops committed that changed state (assigned a seq).', [
      `mittsync_ops_applied_total ${this.opsApplied}`,
    ]);
    metric('mittsync_ops_out_total', 'counter', 'Ops delivered to subscribers (one per op per socket).', [
      `mittsync_ops_out_total ${this.opsOut}`,
    ]);
    metric('mittsync_frames_in_total', 'counter', 'WebSocket frames received.', [
      `mittsync_frames_in_total ${this.framesIn}`,
    ]);
    metric('mittsync_frames_out_total', 'counter', 'WebSocket frames sent.', [
      `mittsync_frames_out_total ${this.framesOut}`,
    ]);
    metric('mittsync_http_requests_total', 'counter', 'HTTP API requests (pages, pushes).', [
      `mittsync_http_requests_total ${this.httpRequests}`,
    ]);
    const h = this.commitLatency;
    const hist: string[] = [];
    let cum = 0;
    COMMIT_BUCKETS.forEach((le, i) => {
      cum += h.counts[i] as number;
      hist.push(`mittsync_commit_seconds_bucket{le="${le}"} ${cum}`);
    });
    hist.push(`mittsync_commit_seconds_bucket{le="+Inf"} ${h.count}`);
    hist.push(`mittsync_commit_seconds_sum ${h.sum}`, `mittsync_commit_seconds_count ${h.count}`);
    metric(
      'mittsync_commit_seconds',
      'histogram',
      'Duration of one group commit (batch of push frames).',
      hist,
    );
    metric('mittsync_commit_queue_depth', 'gauge', 'Push frames waiting for the next group commit.', [
      `mittsync_commit_queue_depth ${g?.commitQueueDepth() ?? 0}`,
    ]);
    metric('mittsync_outbound_queue_bytes', 'gauge', 'Bytes queued towards all sockets.', [
      `mittsync_outbound_queue_bytes ${g?.outboundQueueBytes() ?? 0}`,
    ]);
    metric('mittsync_outbound_queue_max_bytes', 'gauge', 'Largest outbound queue of a single socket.', [
      `mittsync_outbound_queue_max_bytes ${g?.maxOutboundQueueBytes() ?? 0}`,
    ]);
    const pf = this.pageFlights;
    metric('mittsync_http_pages_in_flight', 'gauge', 'HTTP page responses admitted and not yet sent.', [
      `mittsync_http_pages_in_flight ${pf?.count ?? 0}`,
    ]);
    metric(
      'mittsync_http_page_bytes_in_flight',
      'gauge',
      'Encoded HTTP page bytes not yet handed to sockets.',
      [`mittsync_http_page_bytes_in_flight ${pf?.bytes ?? 0}`],
    );
    metric(
      'mittsync_http_page_bytes_in_flight_peak',
      'gauge',
      'The most HTTP page bytes ever in flight at once.',
      [`mittsync_http_page_bytes_in_flight_peak ${pf?.peakBytes ?? 0}`],
    );
    const rej = [...this.rejections.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
    metric(
      'mittsync_rejections_total',
      'counter',
      'Frames, requests and connections refused, by error code.',
      rej.map(([code, n]) => `mittsync_rejections_total{code="${code}"} ${n}`),
    );
    return `${out.join('\n')}\n`;
  }
}

/** Parses Prometheus text into `name{labels}` -> value (tests and the bench read metrics back). */
export function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}
