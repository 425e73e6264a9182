import { describe, expect, it } from 'vitest';
import { CheckpointReporter } from './checkpoint-report';
import type { Env } from './env';
import type { CkptMsg } from './protocol';

function setup(open = true) {
  let now = 0;
  let timers: { at: number; fn: () => void }[] = [];
  const env: Env = {
    now: () => now,
    setTimeout: (fn, ms) => {
      const t = { at: now + ms, fn };
      timers.push(t);
      return t;
    },
    clearTimeout: (h) => {
      timers = timers.filter((t) => t !== h);
    },
    random: () => 0.5,
  };
  const sent: CkptMsg[] = [];
  const state = { open };
  const r = new CheckpointReporter(
    env,
    (m) => sent.push(m),
    () => state.open,
    1000,
  );
  const advance = (ms: number) => {
    now += ms;
    const due = timers.filter((t) => t.at <= now);
    timers = timers.filter((t) => t.at > now);
    for (const t of due) t.fn();
  };
  return { r, sent, advance, state };
}

describe('CheckpointReporter', () => {
  it('reports at once, then at most once a second with the newest checkpoint', () => {
    const { r, sent, advance } = setup();
    r.note('b', 5);
    for (let s = 6; s <= 50; s++) r.note('b', s);
    expect(sent).toEqual([{ type: 'ckpt', bucket: 'b', seq: 5 }]);
    advance(999);
    expect(sent.length).toBe(1);
    advance(1);
    expect(sent[1]).toEqual({ type: 'ckpt', bucket: 'b', seq: 50 });
    advance(5000);
    expect(sent.length).toBe(2);
  });

  it('keeps buckets apart and reports again after a reconnect or a re-join', () => {
    const { r, sent, advance, state } = setup();
    r.note('a', 3);
    r.note('b', 4);
    expect(sent.map((m) => [m.bucket, m.seq])).toEqual([
      ['a', 3],
      ['b', 4],
    ]);
    r.reset();
    r.note('a', 3);
    expect(sent.length).toBe(3);
    advance(1000);
    r.note('a', 1); // a re-join under a new epoch starts over
    expect(sent[3]).toEqual({ type: 'ckpt', bucket: 'a', seq: 1 });
    state.open = false;
    advance(1000);
    r.note('a', 9);
    expect(sent.length).toBe(4);
  });
});
