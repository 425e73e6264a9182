import type { BucketStatus, ClientStatus, ReadyInfo } from '@mittsync/peer';
import type { BrowserContext, Page } from '@playwright/test';
import type { RowsDigest } from '../../apps/demo/src/rows-hash';
import type { MittsyncTestHook, ReadyCapture, StatusPoint } from '../../apps/demo/src/test-hook';

declare global {
  interface Window {
    __mittsync: MittsyncTestHook;
    /** Keys of the table rows seen flashing since {@link Demo.recordFlashes}. */
    __flashed?: string[];
  }
}

export type { RowsDigest };

/** Options of a demo page, as URL parameters (see apps/demo/src/config.ts). */
export interface DemoParams {
  bucket: string;
  /** The device: its IndexedDB database (default: the demo's default). */
  db?: string;
  hosting?: 'auto' | 'dedicated';
  /** A sync URL other than the page's origin (the fault proxy). */
  relay?: string;
  pageSize?: number;
  parallel?: number;
  /** Don't open the bucket on load (`demo.open()` does). */
  open?: boolean;
  /** Record what the page holds when the bucket first says ready. */
  capture?: boolean;
  /** How the device holds the bucket (`replica`, `readOnly`, `copy`). */
  policy?: 'replica' | 'readOnly' | 'copy';
  /** A key prefix the device's token is limited to (row-level access). */
  rows?: string;
}

type WriterStats = Awaited<ReturnType<MittsyncTestHook['stopWriter']>>;

/**
 * One tab running the demo, driven through its test hook (`window.__mittsync`).
 */
export class Demo {
  /** The page's console messages and errors (attached to a failing test). */
  readonly console: string[] = [];

  private constructor(
    readonly page: Page,
    readonly label: string,
  ) {
    const note = (line: string) => {
      this.console.push(`${new Date().toISOString().slice(11, 23)} ${line}`);
      if (this.console.length > 2000) this.console.splice(0, 500);
    };
    page.on('console', (m) => note(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => note(`[pageerror] ${e.stack ?? e.message}`));
    page.on('crash', () => note('[crash]'));
  }

  static async open(
    context: BrowserContext,
    baseUrl: string,
    params: DemoParams,
    label?: string,
  ): Promise<Demo> {
    const page = await context.newPage();
    const demo = new Demo(page, label ?? params.db ?? 'tab');
    await demo.goto(baseUrl, params);
    return demo;
  }

  /** Wraps a demo tab the page opened itself (its "new tab" buttons). */
  static async attach(page: Page, label: string): Promise<Demo> {
    const demo = new Demo(page, label);
    await page.waitForFunction(() => window.__mittsync !== undefined);
    return demo;
  }

  static url(baseUrl: string, p: DemoParams): string {
    const q = new URLSearchParams({ bucket: p.bucket });
    if (p.db !== undefined) q.set('db', p.db);
    if (p.hosting !== undefined) q.set('hosting', p.hosting);
    if (p.relay !== undefined) q.set('relay', p.relay);
    if (p.pageSize !== undefined) q.set('pageSize', String(p.pageSize));
    if (p.parallel !== undefined) q.set('parallel', String(p.parallel));
    if (p.open === false) q.set('open', '0');
    if (p.capture) q.set('capture', '1');
    if (p.policy !== undefined) q.set('policy', p.policy);
    if (p.rows !== undefined) q.set('rows', p.rows);
    return `${baseUrl}/?${q}`;
  }

  async goto(baseUrl: string, params: DemoParams): Promise<void> {
    await this.page.goto(Demo.url(baseUrl, params));
    await this.page.waitForFunction(() => window.__mittsync !== undefined);
  }

  /** Reloads the tab and waits for the hook again. */
  async reload(): Promise<void> {
    await this.page.reload();
    await this.page.waitForFunction(() => window.__mittsync !== undefined);
  }

  /** Scrolls the table to `key` with the demo's "Go to key" box; returns that row's cell. */
  async cell(key: string, field: string) {
    const find = this.page.getByPlaceholder('Go to key…');
    await find.fill(key);
    await find.press('Enter');
    // The table redraws on the next frame: until then its row elements (reused as it scrolls)
    // still hold the rows before the scroll, and a locator could take one about to change.
    await this.nextFrame();
    const cell = this.page.locator(`[data-key="${key}"] [data-field="${field}"]`);
    await cell.waitFor();
    return cell;
  }

  /** Resolves after the page has drawn a frame (and run what was due before it). */
  nextFrame(): Promise<void> {
    return this.page.evaluate(
      () => new Promise<void>((r) => requestAnimationFrame(() => requestAnimationFrame(() => r()))),
    );
  }

  /**
   * From now on, records the key of every table row that shows the flash of a live change
   * (rows are reused elements: a row is recorded when it gains the flash or, flashing, gets
   * another key).
   */
  recordFlashes(): Promise<void> {
    return this.page.evaluate(() => {
      const flashed: string[] = [];
      window.__flashed = flashed;
      new MutationObserver((records) => {
        for (const r of records) {
          const row = r.target as HTMLElement;
          if (row.classList.contains('flash') && row.dataset.key !== undefined) flashed.push(row.dataset.key);
        }
      }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ['class', 'data-key'] });
    });
  }

  /** Keys recorded by {@link recordFlashes}, each once, in the order first seen. */
  flashedKeys(): Promise<string[]> {
    return this.page.evaluate(() => [...new Set(window.__flashed ?? [])]);
  }

  /** Edits one cell in place, as a user would: click, type, Enter. */
  async editCell(key: string, field: string, text: string): Promise<void> {
    const cell = await this.cell(key, field);
    await cell.click();
    await this.page.getByLabel(`${field} of ${key}`).fill(text);
    await this.page.getByLabel(`${field} of ${key}`).press('Enter');
  }

  open(): Promise<void> {
    return this.page.evaluate(() => window.__mittsync.open());
  }

  status(): Promise<ClientStatus | null> {
    return this.page.evaluate(() => window.__mittsync.status());
  }

  bucketStatus(): Promise<BucketStatus | undefined> {
    return this.page.evaluate(() => window.__mittsync.bucketStatus());
  }

  async replicaId(): Promise<string> {
    await this.page.waitForFunction(() => (window.__mittsync.status()?.replicaId ?? '') !== '');
    return this.page.evaluate(() => window.__mittsync.status()?.replicaId ?? '');
  }

  history(): Promise<StatusPoint[]> {
    return this.page.evaluate(() => window.__mittsync.history);
  }

  firstReady(): Promise<ReadyCapture | null> {
    return this.page.evaluate(() => window.__mittsync.firstReady());
  }

  /** Keys the tab's first ready must hold (the page checks at that very status event). */
  expectAtReady(keys: string[]): Promise<void> {
    return this.page.evaluate((k) => window.__mittsync.expectAtReady(k), keys);
  }

  /**
   * Resolves with the bucket's ReadyInfo once it has caught up; fails after `timeout` ms with
   * the bucket's status (rather than waiting out the whole test).
   */
  /** A `copy`'s refresh: resolves when it is up to date again. */
  refresh(): Promise<ReadyInfo> {
    return this.page.evaluate(() => window.__mittsync.refresh());
  }

  /** Writes `key` (acked by the relay) and says how it went: `{ ok }` or the error's code and message. */
  tryPut(key: string, value: unknown): Promise<{ ok: true } | { code: string; message: string }> {
    return this.page.evaluate(([k, v]) => window.__mittsync.tryPut(k, v), [key, value] as const);
  }

  /** Starts recording the keys of remote changes (see {@link remoteChanges}). */
  recordRemoteChanges(): Promise<void> {
    return this.page.evaluate(() => window.__mittsync.recordRemoteChanges());
  }

  /** Keys of the remote changes seen since {@link recordRemoteChanges}. */
  remoteChanges(): Promise<string[]> {
    return this.page.evaluate(() => window.__mittsync.remoteChanges());
  }

  /** The inspector's event log, newest first. */
  events(): Promise<string[]> {
    return this.page.evaluate(() => window.__mittsync.events());
  }

  async whenReady(timeout = 90_000): Promise<ReadyInfo> {
    const ready = this.page.evaluate(() => window.__mittsync.whenReady());
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        void this.status()
          .catch(() => null)
          .then((s) =>
            reject(new Error(`${this.label}: not ready after ${timeout} ms: ${JSON.stringify(s)}`)),
          );
      }, timeout);
    });
    try {
      return await Promise.race([ready, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Count and digest of every row in this tab's replica. */
  digest(): Promise<RowsDigest> {
    return this.page.evaluate(() => window.__mittsync.digest());
  }

  /** Count and digest of what this tab's table holds (its live query). */
  viewDigest(): Promise<RowsDigest> {
    return this.page.evaluate(() => window.__mittsync.viewDigest());
  }

  get(key: string): Promise<unknown> {
    return this.page.evaluate((k) => window.__mittsync.get(k), key);
  }

  getMany(keys: string[]): Promise<unknown[]> {
    return this.page.evaluate((ks) => window.__mittsync.getMany(ks), keys);
  }

  put(key: string, value: unknown, ack: 'local' | 'relay' = 'local'): Promise<void> {
    return this.page.evaluate(([k, v, a]) => window.__mittsync.put(k, v, a), [key, value, ack] as const);
  }

  delete(key: string, ack: 'local' | 'relay' = 'local'): Promise<void> {
    return this.page.evaluate(([k, a]) => window.__mittsync.delete(k, a), [key, ack] as const);
  }

  /** One atomic batch; a `null` value deletes the key. */
  transact(writes: [string, unknown][], ack: 'local' | 'relay' = 'local'): Promise<void> {
    return this.page.evaluate(([w, a]) => window.__mittsync.transact(w, a), [writes, ack] as const);
  }

  startWriter(prefix: string, rate: number, ack: 'local' | 'relay' = 'local'): Promise<void> {
    return this.page.evaluate((o) => window.__mittsync.startWriter(o), { prefix, rate, ack });
  }

  writerStats(): Promise<WriterStats> {
    return this.page.evaluate(() => window.__mittsync.writerStats());
  }

  stopWriter(): Promise<WriterStats> {
    return this.page.evaluate(() => window.__mittsync.stopWriter());
  }

  setOnline(online: boolean): Promise<void> {
    return this.page.evaluate((o) => window.__mittsync.setOnline(o), online);
  }
}
