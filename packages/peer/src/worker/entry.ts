/**
 * The worker entry: a SharedWorker (one replica per origin and database, every tab attached
 * through its own port) or, where there is none, a dedicated worker per tab that elects a
 * leader (see `dedicated.ts`). Each tab's port exposes a {@link TabPort} through comlink.
 */
import { MittsyncError, toMittsyncError } from '@mittsync/core';
import * as Comlink from 'comlink';
import type { AttachInfo, HostConfig, Outcome, TabPort } from './api';
import { type Backend, DedicatedBackend } from './dedicated';
import { mark } from './marks';
import { ReplicaHost } from './replica-host';

mark('worker script');

function fail(e: unknown): Outcome<never> {
  const err = toMittsyncError(e);
  return {
    ok: false,
    error: { code: err.code, message: err.message, ...(err.detail ? { detail: { ...err.detail } } : {}) },
  };
}

const isShared = typeof (globalThis as { onconnect?: unknown }).onconnect !== 'undefined';
const backends = new Map<string, { backend: Backend; config: string }>();

function backendFor(config: HostConfig): Backend {
  const key = JSON.stringify(config);
  const known = backends.get(config.dbName);
  if (known !== undefined && known.config !== key) {
    // A SharedWorker outlives its last tab for a while: a new tab with other options gets a
    // new host once the old one has no tab left (the database lock orders the two).
    const idle = known.backend instanceof ReplicaHost && known.backend.tabCount === 0;
    if (!idle) {
      const was = JSON.parse(known.config) as HostConfig;
      if (was.relay !== config.relay || was.storage !== config.storage) {
        throw new MittsyncError(
          'BAD_MESSAGE',
          `database ${config.dbName} is open in another tab with relay ${was.relay} and ${was.storage} storage; use the same options or another name`,
        );
      }
      return known.backend;
    }
  } else if (known !== undefined) return known.backend;
  const backend = isShared ? new ReplicaHost(config, 'shared') : new DedicatedBackend(config);
  backends.set(config.dbName, { backend, config: key });
  return backend;
}

/** The comlink-exposed object of one tab's port. */
function tabPort(): TabPort {
  let backend: Backend | null = null;
  return {
    async attach(tabId, config, events, getToken): Promise<Outcome<AttachInfo>> {
      try {
        backend = backendFor(config);
        const sink = (bytes: Uint8Array) => events.postMessage(bytes, [bytes.buffer]);
        const token = getToken === null ? null : (id: string) => getToken(id);
        const release = () => {
          events.close();
          if (getToken !== null) (getToken as unknown as Comlink.Remote<unknown>)[Comlink.releaseProxy]();
        };
        return { ok: true, value: await backend.attach(tabId, sink, token, release) };
      } catch (e) {
        return fail(e);
      }
    },
    async request(tabId, req) {
      try {
        if (backend === null)
          throw new MittsyncError('INTERNAL', 'a tab sent a request before attaching to the worker');
        const value = await backend.request(tabId, req);
        const outcome: Outcome<unknown> = { ok: true, value };
        // Big results move as bytes: transferred, not cloned.
        return value instanceof Uint8Array ? Comlink.transfer(outcome, [value.buffer]) : outcome;
      } catch (e) {
        return fail(e);
      }
    },
    async detach(tabId) {
      await backend?.detach(tabId);
    },
  };
}

if (isShared) {
  (globalThis as unknown as { onconnect: (ev: MessageEvent) => void }).onconnect = (ev) => {
    const port = ev.ports[0];
    if (port !== undefined) Comlink.expose(tabPort(), port);
  };
} else {
  Comlink.expose(tabPort(), globalThis as unknown as Comlink.Endpoint);
}
