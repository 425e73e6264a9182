import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { MittsyncError } from '@mittsync/core';
import { type DevReplicaRegistry, memoryDevRegistry } from '../dev-token';

/** What dev mode keeps in `<data>/dev.json`: its own signing secret and the ids it issued. */
interface DevFile {
  secret: string;
  replicas: string[];
}

/** Dev mode's signing secret and issued ids, kept across restarts when `data` is a directory. */
export interface DevState {
  secret: string;
  registry: DevReplicaRegistry;
}

/**
 * Loads (or creates) dev mode's state. The secret is random and belongs to the data directory,
 * never the production `--secret`: a dev token must not verify on a real relay, and a restart
 * must not invalidate the tokens its replicas prove themselves with.
 */
export function loadDevState(data: string): DevState {
  if (data === ':memory:') return { secret: randomBytes(32).toString('hex'), registry: memoryDevRegistry() };
  const file = join(data, 'dev.json');
  let state: DevFile | undefined;
  if (existsSync(file)) {
    try {
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<DevFile>;
      if (typeof parsed.secret === 'string' && parsed.secret.length >= 32 && Array.isArray(parsed.replicas)) {
        state = { secret: parsed.secret, replicas: parsed.replicas.filter((r) => typeof r === 'string') };
      }
    } catch (cause) {
      throw new MittsyncError('STORAGE_UNAVAILABLE', `dev mode state ${file} is unreadable: delete it`, {
        cause,
      });
    }
  }
  const saved: DevFile = state ?? { secret: randomBytes(32).toString('hex'), replicas: [] };
  const save = () => {
    mkdirSync(data, { recursive: true });
    writeFileSync(`${file}.tmp`, JSON.stringify(saved), { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  };
  if (state === undefined) save();
  const ids = new Set(saved.replicas);
  return {
    secret: saved.secret,
    registry: {
      has: (id) => ids.has(id),
      add: (id) => {
        if (ids.has(id)) return;
        ids.add(id);
        saved.replicas.push(id);
        save();
      },
    },
  };
}

/** Whether `host` is a loopback interface address or name. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/** The `Host` values that name a relay on loopback `port`. */
export function loopbackHosts(port: number): string[] {
  const names = ['localhost', '127.0.0.1', '[::1]'];
  // Browsers leave the default port out of Host and Origin.
  return [...names.map((n) => `${n}:${port}`), ...(port === 80 ? names : [])];
}

/** `path` with symlinks resolved as far as it exists (the rest appended as given). */
function realish(path: string): string {
  const abs = resolve(path);
  if (existsSync(abs)) return realpathSync(abs);
  const parent = dirname(abs);
  return parent === abs ? abs : join(realish(parent), abs.slice(parent.length + 1));
}

/**
 * Refuses a data directory inside (or equal to) the static directory: the static server would
 * hand `relay.db` (every bucket) and `dev.json` (the dev secret) to anyone.
 */
export function checkDataOutsideStatic(data: string, staticDir: string): void {
  if (data === ':memory:') return;
  const d = realish(data);
  const s = realish(staticDir);
  const rel = relative(s, d);
  const outside = rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel);
  if (!outside) {
    throw new MittsyncError(
      'BAD_MESSAGE',
      `the data directory ${d} is inside the static directory ${s}: its database would be served to anyone. Put --data outside --static`,
    );
  }
}
