import { describe, expect, it } from 'vitest';
import { MittsyncError } from './errors';
import { PageRequests } from './page-requests';
import type { PageMsg, PageReqMsg } from './protocol';
import { fakeSync, settle } from './testing/sync-fakes';

const req = (reqId: number): PageReqMsg => ({ type: 'pageReq', bucket: 'b', reqId, since: 0, limit: 10 });
const page = (reqId: number): PageMsg => ({ type: 'page', bucket: 'b', reqId, entries: [], next: null });

function rig() {
  const f = fakeSync();
  const pages = new PageRequests(f.env, f.send, 1_000);
  const results: Record<number, string> = {};
  const fetch = (id: number) =>
    pages.fetch(req(id)).then(
      (m) => {
        results[id] = m.type;
      },
      (e: MittsyncError) => {
        results[id] = e.code;
      },
    );
  return { f, pages, results, fetch };
}

describe('PageRequests', () => {
  it('sends the request and resolves it with the page answering its reqId', async () => {
    const { f, pages, results, fetch } = rig();
    void fetch(1);
    void fetch(2);
    expect(f.sent).toEqual([req(1), req(2)]);
    pages.settle(2, page(2));
    await settle();
    expect(results).toEqual({ 2: 'page' });
  });

  it('fails a request with TIMEOUT when no answer comes, and ignores the late answer', async () => {
    const { f, pages, results, fetch } = rig();
    void fetch(1);
    await f.run(1_000);
    expect(results).toEqual({ 1: 'TIMEOUT' });
    pages.settle(1, page(1));
    await settle();
    expect(results).toEqual({ 1: 'TIMEOUT' });
  });

  it('an answered request does not time out later', async () => {
    const { f, pages, results, fetch } = rig();
    void fetch(1);
    pages.settle(1, page(1));
    await f.run(5_000);
    expect(results).toEqual({ 1: 'page' });
  });

  it('fails one request with the relay error, or all of them when the connection goes', async () => {
    const { pages, results, fetch } = rig();
    for (const id of [1, 2, 3]) void fetch(id);
    pages.reject(2, new MittsyncError('RATE_LIMITED', 'slow down'));
    await settle();
    expect(results).toEqual({ 2: 'RATE_LIMITED' });
    pages.rejectAll(new MittsyncError('CLOSED', 'connection closed'));
    await settle();
    expect(results).toEqual({ 1: 'CLOSED', 2: 'RATE_LIMITED', 3: 'CLOSED' });
  });
});
