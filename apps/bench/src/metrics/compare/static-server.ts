/** Serves the built compare page (argv: its directory) for the compare benchmarks. */
import { answer, serve } from './serve';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: static-server.ts <page directory>');
serve({ dir });
answer({});
