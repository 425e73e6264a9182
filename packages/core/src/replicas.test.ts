import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { collectBound, type ReplicaRecord, resumeReset } from './replicas';

const DAY = 24 * 3600 * 1000;
const NOW = 1_700_000_000_000;
const rec = (replicaId: string, acked: number, lastSeen = NOW, dropped?: boolean): ReplicaRecord => ({
  replicaId,
  policy: 'replica',
  acked,
  lastSeen,
  ...(dropped === undefined ? {} : { dropped }),
});
const base = { head: 100, gcUpTo: 0, connected: new Set<string>(), now: NOW, retainMs: 30 * DAY };

describe('collectBound', () => {
  it('purges up to the lowest checkpoint of the live replicas', () => {
    expect(collectBound({ ...base, replicas: [rec('a', 90), rec('b', 40), rec('c', 100)] })).toEqual({
      upTo: 40,
      drop: [],
    });
  });

  it('keeps holding for a replica offline for a day within retention', () => {
    const d = collectBound({ ...base, replicas: [rec('a', 100), rec('off', 10, NOW - DAY)] });
    expect(d).toEqual({ upTo: 10, drop: [] });
  });

  it('drops a replica silent past retention, unless it is connected', () => {
    const replicas = [rec('a', 100), rec('gone', 10, NOW - 31 * DAY)];
    expect(collectBound({ ...base, replicas })).toEqual({ upTo: 100, drop: ['gone'] });
    expect(collectBound({ ...base, replicas, connected: new Set(['gone']) })).toEqual({ upTo: 10, drop: [] });
    // Already dropped: not reported again, not holding anything.
    const dropped = [rec('a', 100), rec('gone', 10, NOW - 31 * DAY, true)];
    expect(collectBound({ ...base, replicas: dropped })).toEqual({ upTo: 100, drop: [] });
  });

  it('purges nothing without a live replica, but the hard cap', () => {
    expect(collectBound({ ...base, gcUpTo: 7, replicas: [] })).toEqual({ upTo: 7, drop: [] });
    expect(collectBound({ ...base, replicas: [rec('slow', 3)], capOps: 50 })).toEqual({ upTo: 50, drop: [] });
  });

  it('never goes backwards, never past the head, never past a live replica (but the cap)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ acked: fc.nat(200), ageDays: fc.nat(60), connected: fc.boolean() }), {
          maxLength: 8,
        }),
        fc.nat(200),
        fc.nat(200),
        (rs, head, gcUpTo) => {
          const replicas = rs.map((r, i) => rec(`r${i}`, r.acked, NOW - r.ageDays * DAY));
          const connected = new Set(rs.flatMap((r, i) => (r.connected ? [`r${i}`] : [])));
          const d = collectBound({ ...base, head, gcUpTo, replicas, connected });
          expect(d.upTo).toBeGreaterThanOrEqual(gcUpTo);
          if (d.upTo > gcUpTo) {
            expect(d.upTo).toBeLessThanOrEqual(head);
            replicas.forEach((r, i) => {
              const live = connected.has(r.replicaId) || NOW - r.lastSeen <= base.retainMs;
              if (live) expect(d.upTo).toBeLessThanOrEqual(r.acked);
              else expect(d.drop).toContain(r.replicaId);
              expect(rs[i]).toBeDefined();
            });
          }
        },
      ),
    );
  });
});

describe('resumeReset', () => {
  it('resets only when a tombstone above the checkpoint was purged, saying why', () => {
    expect(resumeReset(20, 20, rec('a', 20))).toBeUndefined();
    expect(resumeReset(30, 20, undefined)).toBeUndefined();
    expect(resumeReset(19, 20, rec('a', 19))).toBe('horizon');
    expect(resumeReset(19, 20, rec('a', 19, NOW - 40 * DAY, true))).toBe('retention');
  });
});
