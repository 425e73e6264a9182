import {
  type ExpectStatic,
  JestAsymmetricMatchers,
  JestChaiExpect,
  JestExtend,
  setState,
} from '@vitest/expect';
import * as chai from 'chai';

// What `vitest` is inside the probe bundle (esbuild aliases the import to this file): enough of
// `describe`/`it` to collect a shared suite such as `runHostStoreTests`, and vitest's own
// `expect` (the chai plugins of @vitest/expect, which run anywhere), so that suite runs unchanged
// inside a Durable Object on workerd, where vitest's runner cannot.

chai.use(JestExtend);
chai.use(JestChaiExpect);
chai.use(JestAsymmetricMatchers);

/** One collected test: its full name (`describe > ... > it`) and body. */
export interface CollectedTest {
  name: string;
  fn: () => unknown;
}

const collected: CollectedTest[] = [];
const path: string[] = [];

type Body = () => unknown;

interface Describe {
  (name: string, fn: Body): void;
  skip(name: string, fn: Body): void;
  runIf(condition: boolean): (name: string, fn: Body) => void;
  skipIf(condition: boolean): (name: string, fn: Body) => void;
}

interface It {
  (name: string, fn: Body, timeoutMs?: number): void;
  skip(name: string, fn: Body, timeoutMs?: number): void;
  runIf(condition: boolean): (name: string, fn: Body, timeoutMs?: number) => void;
  skipIf(condition: boolean): (name: string, fn: Body, timeoutMs?: number) => void;
}

const skipped = (): void => undefined;

export const describe: Describe = Object.assign(
  (name: string, fn: Body): void => {
    path.push(name);
    try {
      fn();
    } finally {
      path.pop();
    }
  },
  {
    skip: skipped,
    runIf: (condition: boolean) => (condition ? describe : skipped),
    skipIf: (condition: boolean) => (condition ? skipped : describe),
  },
);

export const it: It = Object.assign(
  (name: string, fn: Body): void => {
    collected.push({ name: [...path, name].join(' > '), fn });
  },
  {
    skip: skipped,
    runIf: (condition: boolean) => (condition ? it : skipped),
    skipIf: (condition: boolean) => (condition ? skipped : it),
  },
);

export const test = it;

/** Hooks: no suite the probe runs uses them, so using one is a mistake to hear about. */
function unsupportedHook(name: string): (fn: Body) => void {
  return () => {
    throw new Error(`${name} is not supported inside the probe`);
  };
}
export const beforeAll = unsupportedHook('beforeAll');
export const afterAll = unsupportedHook('afterAll');
export const beforeEach = unsupportedHook('beforeEach');
export const afterEach = unsupportedHook('afterEach');

export const expect = ((value: unknown, message?: string) => chai.expect(value, message)) as ExpectStatic;
Object.assign(expect, chai.expect);
setState(
  {
    assertionCalls: 0,
    isExpectingAssertions: false,
    isExpectingAssertionsError: null,
    expectedAssertionsNumber: null,
    expectedAssertionsNumberErrorGen: null,
  },
  expect,
);

/** What one collected test did. */
export interface TestOutcome {
  name: string;
  /** The error's message when it failed. */
  error?: string;
}

/** Runs (and forgets) every test collected so far, one at a time, in collection order. */
export async function runCollected(): Promise<TestOutcome[]> {
  const tests = collected.splice(0);
  const out: TestOutcome[] = [];
  for (const t of tests) {
    try {
      await t.fn();
      out.push({ name: t.name });
    } catch (e) {
      out.push({ name: t.name, error: e instanceof Error ? e.message : String(e) });
    }
  }
  return out;
}
