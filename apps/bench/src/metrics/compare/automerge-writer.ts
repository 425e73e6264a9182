import { getHeads, type Heads, ImmutableString } from '@automerge/automerge';
import { type AutomergeUrl, Repo } from '@automerge/automerge-repo';
import { WebSocketClientAdapter } from '@automerge/automerge-repo-network-websocket';
import { benchKey, benchValue } from '../../peer-page/data';
import { sleep } from '../peer/harness';

/**
 * The Node side of the Automerge benchmarks: a writer as our join bench's (`backgroundWriter`),
 * on its own automerge-repo `Repo` (WebSocket client adapter, no storage), in sync with the
 * document first, then making one change of `perSecond / 100` sets every 10 ms. Behind
 * schedule, it makes the next changes back to back (as ours does) but never puts more sets
 * into a change to catch up: it writes the same changes as the others' writers, only fewer
 * of them per second when a change takes longer than 10 ms, and reports how many it made.
 */
export async function automergeBackgroundWriter(wsUrl: string, url: string, n: number, perSecond: number) {
  const repo = new Repo({ network: [new WebSocketClientAdapter(wsUrl)] });
  const handle = await repo.find<Record<string, ImmutableString>>(url as AutomergeUrl);
  let stop = false;
  let rev = 0;
  let ops = 0;
  let changes = 0;
  let changeMs = 0;
  let stopped: Promise<{ opsPerSecond: number; msPerChange: number }> | undefined;
  const t0 = performance.now();
  const loop = (async () => {
    const every = 10;
    const per = Math.max(1, Math.round((perSecond * every) / 1000));
    let next = performance.now();
    while (!stop) {
      rev++;
      const c0 = performance.now();
      handle.change((d) => {
        for (let k = 0; k < per; k++) {
          const i = Math.floor(Math.random() * n);
          d[benchKey(i)] = new ImmutableString(JSON.stringify(benchValue(i, rev)));
        }
      });
      changeMs += performance.now() - c0;
      changes++;
      ops += per;
      next += every;
      // Always yields (a timer), so the repo sends each change and answers pings between them.
      await sleep(Math.max(0, next - performance.now()));
    }
  })();
  return {
    /** The writer's heads now: a join started now must include them. */
    mark: (): Heads => getHeads(handle.doc()),
    /**
     * Stops writing (once, however often called); resolves with the ops/s achieved and the
     * mean ms a change took.
     */
    stop: () => {
      stopped ??= (async () => {
        stop = true;
        await loop;
        const opsPerSecond = ops / ((performance.now() - t0) / 1000);
        await repo.shutdown();
        return { opsPerSecond, msPerChange: changeMs / Math.max(1, changes) };
      })();
      return stopped;
    },
  };
}
