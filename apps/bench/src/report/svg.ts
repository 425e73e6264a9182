import { formatValue } from './format';

/**
 * Horizontal bar charts as SVG text, for BENCHMARKS.md: one or more panels stacked, each on its
 * own linear axis from zero, a bar per figure labelled with its value. Self-contained (no
 * fonts or scripts), so GitHub renders them as images.
 */

export type Series = 'mittsync' | 'yjs' | 'automerge' | 'floor';

export interface Bar {
  label: string;
  /** Undefined: not measured this run (drawn as a note instead of a bar). */
  value: number | undefined;
  series: Series;
  /** Printed instead of the value when there is none. */
  missing?: string;
  /** What the figure needs read with: the bar's label gets a `*`, the panel a footnote. */
  remark?: string;
}

export interface Panel {
  title: string;
  unit: string;
  bars: Bar[];
}

const COLORS: Record<Series, string> = {
  mittsync: '#2563eb',
  yjs: '#d97706',
  automerge: '#059669',
  floor: '#9ca3af',
};

const WIDTH = 760;
const PAD = 12;
const LABEL = 240;
const PLOT = WIDTH - LABEL - 100;
const BAR = 22;
const GAP = 8;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A round axis maximum at or above `max` and its tick step (1, 2 or 5 x 10^k; 4-8 ticks). */
export function niceAxis(max: number): { top: number; step: number } {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const raw = max / 5;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 5, 10].find((m) => m * pow >= raw) ?? 10) * pow;
  return { top: Math.ceil(max / step) * step, step };
}

function panelSvg(p: Panel, y0: number): { svg: string; height: number } {
  const values = p.bars.map((b) => b.value).filter((v): v is number => v !== undefined && Number.isFinite(v));
  const { top, step } = niceAxis(Math.max(0, ...values));
  const x = (v: number) => LABEL + (Math.min(v, top) / top) * PLOT;
  const out: string[] = [];
  out.push(`<text x="${PAD}" y="${y0 + 14}" class="title">${esc(p.title)}</text>`);
  const plotTop = y0 + 26;
  const plotHeight = p.bars.length * (BAR + GAP);
  for (let t = 0; t <= top + step / 2; t += step) {
    const tx = x(t).toFixed(1);
    out.push(`<line x1="${tx}" y1="${plotTop}" x2="${tx}" y2="${plotTop + plotHeight}" class="grid"/>`);
    out.push(
      `<text x="${tx}" y="${plotTop + plotHeight + 14}" class="tick" text-anchor="middle">${esc(formatValue(t))}</text>`,
    );
  }
  p.bars.forEach((b, i) => {
    const y = plotTop + i * (BAR + GAP) + GAP / 2;
    const label = b.remark === undefined ? b.label : `${b.label} *`;
    out.push(`<text x="${LABEL - 8}" y="${y + BAR * 0.7}" text-anchor="end">${esc(label)}</text>`);
    if (b.value === undefined || !Number.isFinite(b.value)) {
      const what = b.value === undefined ? (b.missing ?? 'not measured') : 'never observed';
      out.push(`<text x="${LABEL + 6}" y="${y + BAR * 0.7}" class="missing">${esc(what)}</text>`);
      return;
    }
    const w = Math.max(1, x(b.value) - LABEL);
    out.push(
      `<rect x="${LABEL}" y="${y}" width="${w.toFixed(1)}" height="${BAR}" fill="${COLORS[b.series]}" rx="2"/>`,
    );
    const text = `${formatValue(b.value)} ${p.unit}`;
    out.push(`<text x="${(LABEL + w + 6).toFixed(1)}" y="${y + BAR * 0.7}">${esc(text)}</text>`);
  });
  const notes = p.bars.filter((b) => b.remark !== undefined);
  notes.forEach((b, i) => {
    const y = plotTop + plotHeight + 32 + i * 14;
    out.push(`<text x="${LABEL}" y="${y}" class="note">${esc(`* ${b.label}: ${b.remark}`)}</text>`);
  });
  return { svg: out.join('\n'), height: 26 + plotHeight + 24 + notes.length * 14 };
}

/** An SVG document of `panels` under `title`, with `caption` (the run's date and machine) below. */
export function barChart(title: string, panels: Panel[], caption: string): string {
  const parts: string[] = [];
  let y = 34;
  for (const p of panels) {
    const { svg, height } = panelSvg(p, y);
    parts.push(svg);
    y += height + 12;
  }
  const height = y + 8;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">
<title>${esc(title)}</title>
<style>
text { fill: #1f2937; }
.head { font-size: 15px; font-weight: 600; }
.title { font-size: 13px; font-weight: 600; }
.tick { fill: #6b7280; font-size: 10px; }
.grid { stroke: #e5e7eb; stroke-width: 1; }
.missing { fill: #b91c1c; font-style: italic; }
.caption { fill: #6b7280; font-size: 10px; }
.note { fill: #374151; font-size: 11px; }
</style>
<rect width="100%" height="100%" fill="#ffffff"/>
<text x="${PAD}" y="20" class="head">${esc(title)}</text>
${parts.join('\n')}
<text x="${PAD}" y="${height - 6}" class="caption">${esc(caption)}</text>
</svg>
`;
}
