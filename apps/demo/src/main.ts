import { type Bucket, type ClientStatus, createClient, devToken } from '@mittsync/peer';
import './style.css';
import { readConfig, urlWith } from './config';
import { Inspector, type RelayReplica } from './inspector';
import { type Item, jiggle, seedItem, skuKey } from './inventory';
import { LoadGenerator } from './load';
import { TableModel } from './table-model';
import { TableView } from './table-view';
import { installTestHook } from './test-hook';

const SEED_ROWS = 100_000;
const SEED_BATCH = 2_000;

const cfg = readConfig();
const getToken = devToken(
  location.origin,
  cfg.rows === undefined ? {} : { prefixes: { [cfg.bucket]: [cfg.rows] } },
);
const client = createClient({
  relay: cfg.relay,
  // The relay that serves the demo hands out dev tokens (`--dev`), even when the sync socket
  // goes elsewhere (the tests' fault proxy).
  getToken,
  name: cfg.db,
  hosting: cfg.hosting,
  ...(cfg.pageSize === undefined && cfg.parallel === undefined
    ? {}
    : {
        sync: {
          ...(cfg.pageSize === undefined ? {} : { pageSize: cfg.pageSize }),
          ...(cfg.parallel === undefined ? {} : { parallelRanges: cfg.parallel }),
        },
      }),
});

const model = new TableModel<Item>();
let bucket: Bucket<Item> | null = null;
let offline = false;
let status: ClientStatus | null = null;

/** A short label of this device and tab, stored with every write ("Last edit by"). */
function writer(): string {
  const r = status?.replicaId ?? '';
  return `${r.slice(0, 7) || cfg.db}·${client.tabId.slice(1, 4)}`;
}

// ---------------------------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------------------------

function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<HTMLElementTagNameMap[K]> & { testid?: string } = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  const { testid, ...rest } = props;
  Object.assign(e, rest);
  if (testid !== undefined) e.dataset.testid = testid;
  e.append(...children);
  return e;
}

const app = document.getElementById('app') as HTMLElement;
const offlineBtn = h('button', { textContent: 'Go offline', testid: 'offline' });
const inspector = new Inspector({ db: cfg.db, offlineByUser: () => offline, actions: [offlineBtn] });
const table = new TableView(model, (key, field, value) => {
  const item = model.get(key);
  if (item === undefined || bucket === null) return;
  const next = { ...item, [field]: value, by: writer() } as Item;
  bucket
    .put(key, next)
    .catch((e: unknown) =>
      inspector.log(`edit of ${key} refused: ${(e as Error).message ?? String(e)}`, 'bad'),
    );
});

const rowCount = h('span', { className: 'count', testid: 'row-count' }, '0');
const joinBanner = h('div', { className: 'banner', hidden: true, testid: 'join-banner' });

const seedBtn = h('button', { textContent: `Seed ${SEED_ROWS / 1000}k rows`, testid: 'seed' });
const addBtn = h('button', { textContent: 'Add row', testid: 'add-row' });
const rateInput = h('input', {
  type: 'number',
  value: '50',
  min: '1',
  max: '5000',
  className: 'rate',
  title: 'writes per second',
});
rateInput.dataset.testid = 'rate';
const loadBtn = h('button', { textContent: 'Start load', testid: 'load' });
const loadStats = h('span', { className: 'muted', testid: 'load-stats' }, '');
const findInput = h('input', {
  type: 'search',
  placeholder: 'Go to key…',
  className: 'find',
  title: 'Type a key (or its start) and press Enter',
});
findInput.dataset.testid = 'find';
findInput.addEventListener('keydown', (e) => {
  if (e.key !== 'Enter' || findInput.value.trim() === '') return;
  table.scrollTo(Math.min(model.position(findInput.value.trim()), Math.max(0, model.size - 1)));
});
const newTabBtn = h('button', {
  textContent: 'Open in new tab',
  title: 'Same device: the new tab shares this replica (instantly up to date)',
  testid: 'new-tab',
});
const newDeviceBtn = h('button', {
  textContent: 'Open as new device',
  title: 'A fresh replica in a new tab: watch it join while you keep writing',
  testid: 'new-device',
});

const header = h(
  'header',
  { className: 'top' },
  h('h1', {}, h('span', { className: 'logo' }, 'Mittsync'), ' inventory'),
  h(
    'p',
    { className: 'tagline' },
    'A new tab or device joins while everyone keeps writing, and says ',
    h('em', {}, 'ready'),
    ' only when it holds every write made before it joined.',
  ),
  h('span', { className: 'group right' }, newTabBtn, newDeviceBtn),
);

const toolbar = h(
  'div',
  { className: 'toolbar' },
  h('span', { className: 'bucket-name' }, 'bucket ', h('code', {}, cfg.bucket), ' · ', rowCount, ' rows'),
  h('span', { className: 'group' }, findInput),
  h('span', { className: 'group' }, seedBtn, addBtn),
  h('span', { className: 'group' }, 'Load ', rateInput, ' writes/s ', loadBtn, loadStats),
);

app.append(
  header,
  toolbar,
  h(
    'main',
    { className: 'layout' },
    h('div', { className: 'table-wrap' }, joinBanner, table.element),
    inspector.element,
  ),
);

// ---------------------------------------------------------------------------------------------
// Sync
// ---------------------------------------------------------------------------------------------

let load: LoadGenerator<Item> | null = null;

function openBucket(): Bucket<Item> {
  if (bucket !== null) return bucket;
  const b = client.bucket<Item>(cfg.bucket, cfg.policy === undefined ? undefined : { policy: cfg.policy });
  bucket = b;
  b.watch({ prefix: '' }, (r) => {
    // Status events and changes come in order on one channel: while the last status says the
    // bucket is catching up (joining, resuming, flushing), its remote changes are downloaded
    // rows (and live ops the mitt held meanwhile); once it says ready, they are live writes.
    const phase = client.status?.buckets.find((x) => x.bucket === cfg.bucket)?.phase;
    model.apply(r.initial, r.changes, phase === 'ready');
    rowCount.textContent = model.size.toLocaleString('en-US');
    table.schedule();
  });
  load = new LoadGenerator<Item>(b, (count) => {
    const out: [string, Item][] = [];
    for (let i = 0; i < count; i++) {
      if (model.size === 0) {
        const n = Math.floor(Math.random() * SEED_ROWS);
        out.push([skuKey(n), seedItem(n, writer())]);
        continue;
      }
      const index = Math.floor(Math.random() * model.size);
      const key = model.keyAt(index) as string;
      out.push([key, jiggle(model.get(key), index, writer())]);
    }
    return out;
  });
  load.onChange((s) => {
    loadBtn.textContent = s.running ? 'Stop load' : 'Start load';
    loadStats.textContent = s.issued === 0 ? '' : `${s.acked.toLocaleString('en-US')} written`;
  });
  void b.whenReady().then(
    (info) => {
      const covered = info.covered.length;
      const who =
        info.flush === 'none'
          ? 'resumed from its checkpoint'
          : covered === 0
            ? 'no other writer was connected'
            : `holds every write the ${covered} connected writer${covered === 1 ? '' : 's'} made before it joined`;
      inspector.log(
        `${info.bucket} ready at checkpoint ${info.checkpoint.toLocaleString('en-US')}: ${who}` +
          (info.missed.length > 0 ? ` (${info.missed.length} writer(s) not covered)` : ''),
        'good',
      );
    },
    (e: unknown) => inspector.log(`whenReady failed: ${String(e)}`, 'bad'),
  );
  return b;
}

let replicaToken: { token: string; at: number } | undefined;

/** Every few seconds, the relay's list of the bucket's replicas for the inspector. */
async function pollReplicas(): Promise<void> {
  const id = status?.replicaId;
  if (id !== undefined && id !== '' && status?.connection === 'open' && !offline) {
    try {
      if (replicaToken === undefined || Date.now() - replicaToken.at > 10 * 60_000)
        replicaToken = { token: await getToken({ replicaId: id }), at: Date.now() };
      const token = replicaToken.token;
      const res = await fetch(`${location.origin}/v1/buckets/${encodeURIComponent(cfg.bucket)}/replicas`, {
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
      });
      const body = (await res.json()) as { replicas?: RelayReplica[]; message?: string };
      inspector.setReplicas(
        cfg.bucket,
        body.replicas ?? `relay answered ${res.status}: ${body.message ?? ''}`,
      );
    } catch (e) {
      inspector.setReplicas(cfg.bucket, `could not list replicas: ${String(e)}`);
    }
  }
  setTimeout(() => void pollReplicas(), 5_000);
}
void pollReplicas();

function showStatus(s: ClientStatus): void {
  status = s;
  inspector.update(s);
  const b = s.buckets.find((x) => x.bucket === cfg.bucket);
  const partial = b !== undefined && b.phase !== 'ready' && !b.ready;
  joinBanner.hidden = !partial;
  if (partial) {
    joinBanner.textContent =
      `Joining: ${b.progress.entries.toLocaleString('en-US')} rows downloaded so far. ` +
      'What you see is incomplete until the inspector says ready.';
  }
}

client.onStatus(showStatus);
client.ready.then(
  () => {
    if (client.status !== null) showStatus(client.status);
  },
  (e: unknown) => inspector.log(`could not start the replica: ${String(e)}`, 'bad'),
);

// ---------------------------------------------------------------------------------------------
// Controls
// ---------------------------------------------------------------------------------------------

async function seed(rows: number): Promise<void> {
  const b = openBucket();
  seedBtn.disabled = true;
  const started = performance.now();
  inspector.log(`seeding ${rows.toLocaleString('en-US')} rows`);
  try {
    for (let start = 0; start < rows; start += SEED_BATCH) {
      const end = Math.min(rows, start + SEED_BATCH);
      const by = writer();
      await b.transact((tx) => {
        for (let n = start; n < end; n++) tx.put(skuKey(n), seedItem(n, by));
      });
      seedBtn.textContent = `Seeding… ${Math.round((end / rows) * 100)}%`;
    }
    const s = ((performance.now() - started) / 1000).toFixed(1);
    inspector.log(
      `seeded ${rows.toLocaleString('en-US')} rows locally in ${s} s; pushing to the relay`,
      'good',
    );
  } catch (e) {
    inspector.log(`seeding failed: ${String(e)}`, 'bad');
  } finally {
    seedBtn.disabled = false;
    seedBtn.textContent = `Seed ${SEED_ROWS / 1000}k rows`;
  }
}

seedBtn.addEventListener('click', () => void seed(SEED_ROWS));

addBtn.addEventListener('click', () => {
  const b = openBucket();
  let n = model.size;
  while (model.indexOf(skuKey(n)) >= 0) n++;
  const key = skuKey(n);
  void b.put(key, { ...seedItem(n, writer()), name: `New item ${n + 1}` }).then(() => {
    const i = model.indexOf(key);
    if (i >= 0) table.scrollTo(i);
  });
});

loadBtn.addEventListener('click', () => {
  openBucket();
  if (load === null) return;
  if (load.stats.running) {
    load.stop();
    inspector.log('load stopped');
  } else {
    const rate = Math.max(1, Math.min(5000, Number(rateInput.value) || 50));
    load.start(rate);
    inspector.log(`load: ${rate} writes/s`);
  }
});

offlineBtn.addEventListener('click', () => {
  offline = !offline;
  offlineBtn.textContent = offline ? 'Go online' : 'Go offline';
  offlineBtn.classList.toggle('active', offline);
  inspector.log(offline ? 'offline: writes stay in the outbox' : 'online: resuming', 'warn');
  void client.setOnline(!offline).catch((e: unknown) => inspector.log(String(e), 'bad'));
  inspector.refresh();
});

newTabBtn.addEventListener('click', () => window.open(location.href, '_blank'));
newDeviceBtn.addEventListener('click', () => {
  const device = `device-${Math.random().toString(36).slice(2, 7)}`;
  window.open(urlWith({ db: device }), '_blank');
});

if (cfg.autoOpen) openBucket();

installTestHook({
  config: cfg,
  client,
  model,
  bucket: () => bucket,
  open: openBucket,
  status: () => status,
  setOnline: async (online) => {
    offline = !online;
    offlineBtn.textContent = offline ? 'Go online' : 'Go offline';
    await client.setOnline(online);
  },
  seed,
});
