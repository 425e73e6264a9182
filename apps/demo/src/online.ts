import type { Client } from '@mittsync/peer';

/** The peer's way to cut and restore the relay connection on request, if this build has one. */
interface OnlineSwitch {
  setOnline(online: boolean): Promise<void> | void;
}

function switchOf(client: Client): OnlineSwitch | null {
  const c = client as unknown as Partial<OnlineSwitch>;
  return typeof c.setOnline === 'function' ? (c as OnlineSwitch) : null;
}

export function supportsOffline(client: Client): boolean {
  return switchOf(client) !== null;
}

/** Disconnects from the relay (writes stay in the outbox) or reconnects and resumes. */
export async function setOnline(client: Client, online: boolean): Promise<void> {
  const s = switchOf(client);
  if (s === null) throw new Error('this build of @mittsync/peer cannot go offline on request');
  await s.setOnline(online);
}
