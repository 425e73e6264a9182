/**
 * Platform hooks the core needs, injected so the core reads no globals directly: the
 * simulator drives virtual time and seeded randomness through the same interface.
 */
export interface Env {
  /** Wall-clock milliseconds. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** Uniform in [0, 1). */
  random(): number;
}

interface TimerGlobals {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  crypto?: { getRandomValues(a: Uint32Array): Uint32Array };
}

/** The real clock, timers and a crypto-backed random source of whatever runtime we are on. */
export function systemEnv(): Env {
  const g = globalThis as unknown as TimerGlobals;
  const buf = new Uint32Array(1);
  return {
    now: () => Date.now(),
    setTimeout: (fn, ms) => g.setTimeout(fn, ms),
    clearTimeout: (h) => g.clearTimeout(h),
    random: g.crypto
      ? () => {
          g.crypto?.getRandomValues(buf);
          return (buf[0] as number) / 2 ** 32;
        }
      : Math.random,
  };
}

const ID_ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

/** A random id of `length` base-36 characters, from the injected random source. */
export function randomId(random: () => number, length = 16): string {
  let s = '';
  for (let i = 0; i < length; i++) s += ID_ALPHABET[Math.floor(random() * 36)];
  return s;
}

/** Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^attempt)). */
export function backoffDelay(attempt: number, random: () => number, baseMs = 250, capMs = 30_000): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt, 20)));
}
