// The schema module the edge relay's schema tests bundle into the Worker (see
// `EdgeRelayOptions.schemaModule`): the conformance schemas, nothing that needs Node.
export { CONFORMANCE_SCHEMAS as default } from '@mittsync/core/testing/schemas';
