/**
 * Test helpers for relays on Node: the conformance suite and protocol helpers from
 * `@mittsync/core/testing` (re-exported), and what needs Node to run them here.
 */
export type {
  AckedWriters,
  RelaySetup,
  RelayUnderTest,
  SocketTarget,
  TokenRequest,
} from '@mittsync/core/testing';
export {
  CONFORMANCE_SCHEMAS,
  convergedWithRelay,
  eventually,
  httpGet,
  liveState,
  openReplica,
  RawClient,
  rawClient,
  relayEntries,
  runRelayConformanceTests,
  runRelaySchemaTests,
  sleep,
  startAckedWriters,
  UpgradeRefused,
  uniq,
} from '@mittsync/core/testing';
export {
  BAD_INPUT_LIMITS,
  type BadInputRelay,
  rejectionsAt,
  runBadInputTests,
} from './bad-input-cases';
export { createNodeSocket, nodeSocketTarget } from './node-socket';
export { type AttackAnswer, fillBucket, type PageAttack, rssMb, startPageAttack } from './page-attack';
