import type { Client } from '@mittsync/peer';
import { createContext, type ReactNode, useContext } from 'react';

/** @internal The client of the nearest {@link MittsyncProvider} (null outside one). */
export const ClientContext = createContext<Client | null>(null);

/** Props of {@link MittsyncProvider}. */
export interface MittsyncProviderProps {
  /** The client the hooks below use (from `createClient` of `@mittsync/peer`). */
  client: Client;
  children?: ReactNode;
}

/**
 * Gives the components below it a Mittsync client. Create the client once, outside React's
 * render (a module, or a ref), and close it when the app goes away.
 *
 * @example
 * ```tsx
 * const client = createClient({ relay: 'https://relay.example.com', getToken });
 * createRoot(el).render(
 *   <MittsyncProvider client={client}>
 *     <App />
 *   </MittsyncProvider>,
 * );
 * ```
 */
export function MittsyncProvider({ client, children }: MittsyncProviderProps): ReactNode {
  return <ClientContext.Provider value={client}>{children}</ClientContext.Provider>;
}

/** The client of the nearest {@link MittsyncProvider}; throws outside one. */
export function useClient(): Client {
  const client = useContext(ClientContext);
  if (client === null) {
    throw new Error('@mittsync/react: no client here; wrap the app in <MittsyncProvider client={client}>');
  }
  return client;
}
