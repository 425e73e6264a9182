import type { SimRelay } from './network';
import type { Scheduler } from './scheduler';

/**
 * Replicas going silent past the retention period (issue 21), as an option of `runSeed` kept
 * apart from its chaos: the relay runs with a short retention and no hard cap on tombstones,
 * so the distributed GC alone decides what is purged; one or two nodes crash early in the
 * chaos phase and stay down until the network is quiet, longer than the retention. The
 * others keep writing and deleting, so the silent ones are dropped from the replicas that
 * hold tombstones back, tombstones are purged past them, and when they come back they are
 * reset (`retention`) where they need a purged one. `runSeed`'s invariants then check that
 * every replica converges and no acked write is lost.
 */
export interface SilencePlan {
  /** Relay options: retention in virtual ms, and no hard cap (a cap far past any run). */
  readonly hostOptions: { tombstoneRetainOps: number; tombstoneRetainMs: number };
  /** Whether node `index` must stay down now (silent, and the network not yet quiet). */
  holds(index: number, quiet: boolean): boolean;
  /** Picks the silent nodes and schedules their crashes (once, before the chaos phase runs). */
  schedule(sched: Scheduler, chaosMs: number, nodeCount: number, crash: (index: number) => void): void;
  /** Counts the relay's `retention` resets. */
  observe(relay: SimRelay): void;
  readonly stats: { silenced: number; retentionResets: number };
}

export function planSilence(random: () => number): SilencePlan {
  const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const retainMs = between(200, 1_500);
  const silent = new Set<number>();
  const stats = { silenced: 0, retentionResets: 0 };
  return {
    hostOptions: { tombstoneRetainOps: 1_000_000_000, tombstoneRetainMs: retainMs },
    holds: (index, quiet) => silent.has(index) && !quiet,
    schedule(sched, chaosMs, nodeCount, crash) {
      // Never node 0 (it always starts): at least one node stays to write.
      const want = Math.min(nodeCount - 1, between(1, 2));
      while (silent.size < want) silent.add(between(1, nodeCount - 1));
      stats.silenced = silent.size;
      for (const index of silent) sched.setTimeout(() => crash(index), between(0, Math.floor(chaosMs / 3)));
    },
    observe(relay) {
      const inner = relay.filter;
      relay.filter = (dir, msg, replicaId) => {
        if (dir === 'out' && msg.type === 'reset' && msg.reason === 'retention') stats.retentionResets++;
        return inner === undefined ? 'pass' : inner(dir, msg, replicaId);
      };
    },
    stats,
  };
}
