/** The demo's data: one inventory item per row, keyed by its SKU (`sku-000042`). */
export interface Item {
  name: string;
  qty: number;
  /** Price in cents. */
  price: number;
  location: string;
  /** Who wrote this version (a short label of the writing device and tab). */
  by: string;
}

/** The columns a user can edit in place, and how each parses what was typed. */
export const EDITABLE = {
  name: (s: string) => (s.trim().length > 0 ? s.trim().slice(0, 80) : undefined),
  qty: (s: string) => {
    const n = Number(s);
    return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
  },
  price: (s: string) => {
    const n = Number(s.replace(/^\$/, ''));
    return Number.isFinite(n) && n >= 0 ? Math.round(n * 100) : undefined;
  },
  location: (s: string) => (s.trim().length > 0 ? s.trim().slice(0, 40) : undefined),
} satisfies Record<string, (s: string) => string | number | undefined>;

export type EditableField = keyof typeof EDITABLE;

const ADJECTIVES = [
  'Red',
  'Steel',
  'Compact',
  'Heavy',
  'Silent',
  'Rapid',
  'Folding',
  'Solar',
  'Cordless',
  'Vintage',
  'Modular',
  'Tiny',
];
const NOUNS = [
  'Widget',
  'Bracket',
  'Lantern',
  'Kettle',
  'Drill',
  'Hinge',
  'Router',
  'Stool',
  'Cable',
  'Valve',
  'Pump',
  'Clamp',
  'Fan',
  'Crate',
];
const LOCATIONS = ['Aisle 1', 'Aisle 2', 'Aisle 3', 'Aisle 4', 'Dock A', 'Dock B', 'Mezzanine', 'Back room'];

/** The SKU key of item number `n`. */
export function skuKey(n: number): string {
  return `sku-${String(n).padStart(6, '0')}`;
}

/** A deterministic item for number `n` (seeding gives every device the same 100k rows). */
export function seedItem(n: number, by: string): Item {
  const a = ADJECTIVES[n % ADJECTIVES.length] as string;
  const b = NOUNS[Math.floor(n / ADJECTIVES.length) % NOUNS.length] as string;
  return {
    name: `${a} ${b} ${(n % 97) + 1}`,
    qty: (n * 7919) % 500,
    price: 199 + ((n * 104729) % 20000),
    location: LOCATIONS[n % LOCATIONS.length] as string,
    by,
  };
}

/** A random small change to an item, as a busy warehouse would make. */
export function jiggle(item: Item | undefined, n: number, by: string, random = Math.random): Item {
  const base = item ?? seedItem(n, by);
  const r = random();
  if (r < 0.6) return { ...base, qty: Math.max(0, base.qty + Math.floor(random() * 21) - 10), by };
  if (r < 0.85) return { ...base, price: Math.max(1, base.price + Math.floor(random() * 201) - 100), by };
  return { ...base, location: LOCATIONS[Math.floor(random() * LOCATIONS.length)] as string, by };
}

export function formatPrice(cents: number): string {
  return `$${(cents / 100).toFixed(2)}`;
}
