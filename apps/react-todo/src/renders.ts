/**
 * How often each component of the example rendered, for the end-to-end test that measures
 * re-renders per live change (read from the page as `window.__todoRenders`).
 */
export interface RenderCounts {
  /** The list (one `useQuery`). */
  list: number;
  /** The sync-status badge (`useStatus`). */
  badge: number;
  /** Each todo row (memoized), by key. */
  items: Record<string, number>;
  /** Live-query deliveries the list has shown (`snapshot.version`). */
  deliveries: number;
}

export const renders: RenderCounts = { list: 0, badge: 0, items: {}, deliveries: 0 };

declare global {
  interface Window {
    __todoRenders?: RenderCounts;
  }
}

window.__todoRenders = renders;
