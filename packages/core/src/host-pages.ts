import { PageSizer, readColumnPage } from './column-page';
import { columnsOf, type EntryColumns } from './columns';
import { projectEntry, scanSpans } from './host-spec';
import type { HostMeta, HostStore } from './host-store';
import type { Entry } from './model';
import { packedValueOf } from './packed';
import type { PageCaches } from './page-cache';
import type { PageMsg, PageReqMsg, ServerMessage } from './protocol';
import { type ReplicationSpec, restrictsKeys, specSpans } from './spec';
import { utf8Length } from './utf8';
import { measureValue } from './validate';

/** Most entries one page holds, whatever its request asks for. */
export const MAX_PAGE_ENTRIES = 10_000;

/** Entries read by a page's first scan: small enough that 64 values of the largest size stay a few MB. */
const FIRST_SCAN = 64;

/**
 * About the bytes `e` takes in a page frame: its key, HLC, seq and value. A packed value counts
 * its MessagePack bytes; a plain one is measured as validation measures ops.
 */
export function pageEntryBytes(e: Entry): number {
  const packed = packedValueOf(e);
  const value = packed !== undefined ? packed.byteLength : e.value === undefined ? 1 : measureValue(e.value);
  return utf8Length(e.key) + e.hlc.length + value + 24;
}

/** `entries` by column; undefined for a key with no UTF-8 form (it goes as entries). */
function columnsOrUndefined(entries: readonly Entry[]): EntryColumns | undefined {
  try {
    return columnsOf(entries);
  } catch {
    return undefined;
  }
}

/** What serving pages needs of its {@link BucketHost}. */
export interface PageHost {
  readonly bucket: string;
  readonly store: HostStore;
  /** Byte budget of one page. */
  readonly maxPageBytes: number;
  /** The bucket's page caches, when the relay keeps any. */
  readonly caches: PageCaches | undefined;
  /** Buckets with fewer entries are not cached. */
  readonly cacheMin: number;
  /** The bucket's meta now (head, horizon, epoch). */
  meta(): HostMeta;
}

/**
 * A bucket's catch-up pages: read from its store (by column where the store can), or served
 * from its page cache (page-cache.ts), for a {@link BucketHost}.
 */
export class PageServer {
  /** The mean entry size seen, for column reads. */
  private readonly sizer = new PageSizer();

  constructor(private readonly host: PageHost) {}

  /**
   * Serves one page of a catch-up download (over the socket or HTTP): at most `req.limit`
   * entries (and {@link MAX_PAGE_ENTRIES}), ending at the first entry past `maxPageBytes`.
   * With a `spec`, only its keys are read (span by span) and values are projected.
   */
  page(req: PageReqMsg, spec?: ReplicationSpec): PageMsg | ServerMessage {
    const h = this.host;
    if (req.since > 0 && req.since < h.meta().horizon) {
      // Tombstones the caller needs were purged during its download: it must start over.
      return { type: 'reset', bucket: h.bucket, subId: -1, epoch: h.meta().epoch, reason: 'horizon' };
    }
    const limit = Math.min(req.limit, MAX_PAGE_ENTRIES);
    const fields = spec?.fields;
    const spans = restrictsKeys(spec) ? specSpans(spec) : undefined;
    const store = h.store;
    const scan =
      spans !== undefined
        ? (since: number, a: string | undefined, u: string | undefined, n: number, span?: number) =>
            scanSpans(store, fields === undefined, spans, since, a, u, n, span)
        : fields !== undefined
          ? store.scan
          : (store.pageScan ?? store.scan);
    const budget = h.maxPageBytes;
    const byColumn = req.cols === true && spans === undefined && fields === undefined;
    const colsPage = (cols: EntryColumns, next: string | null): PageMsg => ({
      type: 'page',
      bucket: h.bucket,
      reqId: req.reqId,
      entries: [],
      cols,
      next,
      head: h.meta().head,
    });
    // A join of a large bucket, or of a spec of one: from (and into) the view's page cache.
    const cache =
      req.cols === true && req.since === 0 && h.caches !== undefined && store.count() >= h.cacheMin
        ? h.caches.of(spans === undefined && fields === undefined ? '' : JSON.stringify(spec))
        : undefined;
    if (cache !== undefined) {
      cache.checkHorizon(h.meta().horizon);
      const hit = cache.serve(
        {
          head: h.meta().head,
          changed: (since, a, u, n, span) =>
            byColumn && store.pageScan !== undefined
              ? store.pageScan(since, a, u, n, span)
              : scan.call(store, since, a, u, n, span).map((e) => projectEntry(fields, e)),
        },
        req.after,
        req.until,
        limit,
      );
      if (hit !== undefined) return colsPage(hit.cols, hit.next);
    }
    if (byColumn) {
      const fast = readColumnPage(h.store, req, limit, budget, this.sizer);
      if (fast !== undefined) {
        cache?.add(req.after, req.until, fast.cols, fast.next, h.meta().head);
        return colsPage(fast.cols, fast.next);
      }
    }
    const entries: Entry[] = [];
    let bytes = 0;
    let full = false;
    let after = req.after;
    // Reading `limit` rows of large values at once would hold megabytes (and the event loop)
    // only to drop most of them: read a few first, then as many as the rest of the budget
    // holds at the mean size seen so far.
    let want = Number.isFinite(budget) ? Math.min(limit, FIRST_SCAN) : limit;
    for (;;) {
      const got = scan.call(h.store, req.since, after, req.until, want);
      for (const raw of got) {
        const e = projectEntry(fields, raw);
        entries.push(e);
        bytes += pageEntryBytes(e);
        if (bytes > budget) break;
      }
      const last = entries[entries.length - 1];
      if (bytes > budget || entries.length >= limit) {
        full = true;
        break;
      }
      if (got.length < want || last === undefined) break;
      after = last.key;
      const mean = bytes / entries.length;
      want = Math.min(limit - entries.length, Math.max(FIRST_SCAN, Math.ceil((budget - bytes) / mean) + 1));
    }
    const last = entries[entries.length - 1];
    this.sizer.learn(bytes, entries.length);
    const next = full && last !== undefined && last.key !== req.until ? last.key : null;
    if (cache !== undefined) {
      const cols = columnsOrUndefined(entries);
      if (cols !== undefined) {
        cache.add(req.after, req.until, cols, next, h.meta().head);
        return colsPage(cols, next);
      }
    }
    return {
      type: 'page',
      bucket: h.bucket,
      reqId: req.reqId,
      entries,
      next,
      head: h.meta().head,
    };
  }
}
