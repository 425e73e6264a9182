import { describe, expect, it } from 'vitest';
import { createRelayApp } from './app';
import { createAuthenticator, signToken } from './auth';
import { SqliteDriver } from './node/sqlite-driver';
import { Relay, sqlStores } from './relay';

const secret = 'app-test-secret-app-test-secret-app!';

async function setup() {
  const relay = new Relay({
    stores: sqlStores(new SqliteDriver(':memory:')),
    auth: createAuthenticator({ secret }),
    limits: { maxPagesInFlightPerPrincipal: 1 },
  });
  const app = createRelayApp({ relay });
  const token = await signToken(secret, { sub: 'reader', read: ['*'] });
  const get = (signal?: AbortSignal) =>
    app.fetch(
      new Request('http://relay/v1/buckets/b/pages?limit=10', {
        headers: { authorization: `Bearer ${token}` },
        ...(signal === undefined ? {} : { signal }),
      }),
    );
  return { relay, get };
}

describe('page route', () => {
  it('holds a page slot until its body is read, refusing the next page with Retry-After', async () => {
    const { relay, get } = await setup();
    const first = await get();
    expect(relay.pageFlights.count).toBe(1);
    const second = await get();
    expect([second.status, second.headers.get('retry-after')]).toEqual([429, '1']);
    await first.arrayBuffer();
    expect(relay.pageFlights.count).toBe(0);
  });

  it('frees the slot of a client that goes away before its body is built or read', async () => {
    const { relay, get } = await setup();
    const early = new AbortController();
    const pending = get(early.signal);
    early.abort();
    await pending;
    expect(relay.pageFlights.count).toBe(0);
    const late = new AbortController();
    await get(late.signal);
    expect(relay.pageFlights.count).toBe(1);
    late.abort();
    expect(relay.pageFlights.count).toBe(0);
  });
});
