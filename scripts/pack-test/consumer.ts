// Type-checked in the pack test's fresh project with `module: nodenext` (see ../pack-test.mjs).
import { type MittsyncError, Replica, type Value } from '@mittsync/core';
import { encodeHlc } from '@mittsync/core/model';
import { createClient } from '@mittsync/peer';
import { MittsyncProvider, useQuery, useStatus } from '@mittsync/react';
import { createRelayApp, type RelayOptions } from '@mittsync/relay';

const value: Value = { title: 'milk' };
const code: MittsyncError['code'] = 'NOT_FOUND';
export const checks = [
  Replica.open,
  encodeHlc,
  createClient,
  createRelayApp,
  MittsyncProvider,
  useQuery,
  useStatus,
  value,
  code,
] as const;
export type Options = RelayOptions;
