import { createClient, devToken } from '@mittsync/peer';
import { MittsyncProvider } from '@mittsync/react';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './app';
import './style.css';

// The page is served by a dev relay (`--dev`), which hands out tokens on its own origin.
// `?db=` picks the IndexedDB database (another one is another device), `?bucket=` the list.
const params = new URLSearchParams(location.search);
const client = createClient({
  relay: params.get('relay') || location.origin,
  getToken: devToken(location.origin),
  name: params.get('db') || 'mittsync-todo',
});

createRoot(document.getElementById('root') as HTMLElement).render(
  <StrictMode>
    <MittsyncProvider client={client}>
      <App bucket={params.get('bucket') || 'todos'} />
    </MittsyncProvider>
  </StrictMode>,
);
