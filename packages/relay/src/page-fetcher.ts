// The page fetcher is a client of the relay's page endpoint, so it lives in core beside
// WebSocketTransport (the relay conformance suite uses it too); re-exported here so the
// relay's public API is unchanged.
export { createHttpPageFetcher, type HttpPageFetcherOptions } from '@mittsync/core';
