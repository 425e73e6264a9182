import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, BrowserContext, CDPSession } from 'playwright';
import { root, sleep } from './harness';

/** Headless Chromium for the peer benchmarks, and what they watch of it (CPU, the worker's heap). */

async function launchOptions() {
  const chromiumMod = join(root, 'scripts', 'chromium.mjs');
  const { findChromium, CHROMIUM_ARGS } = (await import(chromiumMod)) as {
    findChromium(): string | undefined;
    CHROMIUM_ARGS: string[];
  };
  const executablePath = findChromium();
  return {
    headless: true,
    ...(executablePath === undefined ? {} : { executablePath }),
    args: [...CHROMIUM_ARGS, '--enable-precise-memory-info'],
  };
}

export async function launch(): Promise<Browser> {
  const { chromium } = await import('playwright');
  return chromium.launch(await launchOptions());
}

/** A browser on a profile directory, so IndexedDB survives closing it (a real cold start). */
export async function launchProfile(dir: string): Promise<BrowserContext> {
  const { chromium } = await import('playwright');
  return chromium.launchPersistentContext(dir, await launchOptions());
}

/**
 * CPU seconds used so far by the relay and by Chromium's processes, by kind (Linux /proc;
 * for PEER_DEBUG breakdowns and {@link settle}). Kinds: `relay`, `workerd` (the edge relay), and `chromium <--type=>`
 * (browser, renderer, utility, gpu-process...; `(browser UI)` for the browser's own WebUI
 * renderer). With `PEER_DEBUG=threads`, each renderer thread as well.
 */
export function cpuByProcess(threads = process.env.PEER_DEBUG === 'threads'): Map<string, number> {
  const out = new Map<string, number>();
  let dirs: string[] = [];
  try {
    dirs = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const pid of dirs) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      let kind: string | undefined;
      if (cmd.includes('mittsync.mjs relay')) kind = 'relay';
      else if (/\bworkerd\b/.test(cmd)) kind = 'workerd';
      else if (/chrom/i.test(cmd)) {
        kind = `chromium ${/--type=(\S+)/.exec(cmd)?.[1] ?? 'browser'}`;
        // New headless is the whole browser: its own UI (WebUI) runs in renderers too.
        if (cmd.includes('--top-chrome-webui')) kind += ' (browser UI)';
      }
      if (kind === undefined) continue;
      const seconds = (statFile: string) => {
        const stat = readFileSync(statFile, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return (Number(f[11]) + Number(f[12])) / 100;
      };
      out.set(kind, (out.get(kind) ?? 0) + seconds(`/proc/${pid}/stat`));
      if (!threads || !kind.startsWith('chromium renderer')) continue;
      // By thread too (the worker, the page, V8's helpers...).
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        const name = tid === pid ? 'main' : readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
        const k = `${kind} ${pid} ${name}`;
        out.set(k, (out.get(k) ?? 0) + seconds(`/proc/${pid}/task/${tid}/stat`));
      }
    } catch {
      // the process ended meanwhile
    }
  }
  return out;
}

/**
 * Waits until Chromium's processes are quiet (under ~8% of a core for 250 ms; 10 s at most).
 * A freshly launched browser keeps starting its own UI for a few seconds here (new headless
 * runs the browser's WebUI renderer, ~0.5-0.7 s of CPU), which a fixed 500 ms wait left to
 * overlap the measured join on 2 cores.
 */
export async function settle(): Promise<void> {
  const chromium = (m: Map<string, number>) =>
    [...m].filter(([k]) => k.startsWith('chromium')).reduce((sum, [, v]) => sum + v, 0);
  const until = Date.now() + 10_000;
  let last = chromium(cpuByProcess(false));
  await sleep(500);
  while (Date.now() < until) {
    await sleep(250);
    const now = chromium(cpuByProcess(false));
    if (now - last <= 0.02) return;
    last = now;
  }
}

export function cpuDelta(before: Map<string, number>, after: Map<string, number>): string {
  return [...after]
    .map(([k, v]) => [k, v - (before.get(k) ?? 0)] as const)
    .filter(([, v]) => v > 0.02)
    .map(([k, v]) => `${k} ${v.toFixed(2)} s`)
    .join(', ');
}

/** A CDP session on the page's SharedWorker (found through the browser's target list). */
export async function workerSession(browser: Browser) {
  const cdp: CDPSession = await browser.newBrowserCDPSession();
  let targetId: string | undefined;
  for (let i = 0; i < 200 && targetId === undefined; i++) {
    const { targetInfos } = (await cdp.send('Target.getTargets')) as {
      targetInfos: { targetId: string; type: string }[];
    };
    targetId = targetInfos.find((t) => t.type === 'shared_worker')?.targetId;
    if (targetId === undefined) await sleep(10);
  }
  if (targetId === undefined) throw new Error('no SharedWorker target found');
  const { sessionId } = (await cdp.send('Target.attachToTarget', { targetId, flatten: false })) as {
    sessionId: string;
  };
  let id = 1;
  const waiting = new Map<number, (result: unknown) => void>();
  cdp.on('Target.receivedMessageFromTarget', (ev: { sessionId: string; message: string }) => {
    if (ev.sessionId !== sessionId) return;
    const msg = JSON.parse(ev.message) as { id?: number; result?: unknown };
    if (msg.id !== undefined) waiting.get(msg.id)?.(msg.result);
  });
  return {
    /** Sends a CDP command to the worker; resolves with its result (undefined after `timeoutMs`). */
    send<T>(method: string, params: object = {}, timeoutMs = 2000): Promise<T | undefined> {
      return new Promise((resolve) => {
        const n = id++;
        waiting.set(n, (r) => {
          waiting.delete(n);
          resolve(r as T);
        });
        void cdp.send('Target.sendMessageToTarget', {
          sessionId,
          message: JSON.stringify({ id: n, method, params }),
        });
        setTimeout(() => resolve(undefined), timeoutMs);
      });
    },
    detach: () => cdp.detach().catch(() => undefined),
  };
}

type WorkerSession = Awaited<ReturnType<typeof workerSession>>;

/** Polls the worker's JS heap every 50 ms; the returned function stops and gives the peak. */
export function sampleWorkerHeap(worker: WorkerSession): () => Promise<number> {
  let peak = 0;
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      // The JS heap plus ArrayBuffer backing stores (page columns, frames), which live outside it.
      const r = await worker.send<{ usedSize: number; backingStorageSize?: number }>('Runtime.getHeapUsage');
      if (process.env.PEER_DEBUG && r !== undefined && r.backingStorageSize === undefined)
        console.error('Runtime.getHeapUsage has no backingStorageSize here: ArrayBuffers are not counted');
      peak = Math.max(peak, (r?.usedSize ?? 0) + (r?.backingStorageSize ?? 0));
      await sleep(50);
    }
  })();
  return async () => {
    stop = true;
    await loop;
    return peak;
  };
}
