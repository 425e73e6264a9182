import { EDITABLE, type EditableField, formatPrice, type Item } from './inventory';
import type { TableModel } from './table-model';

const ROW_HEIGHT = 32;
/** Rows rendered above and below the visible ones, so fast scrolling shows no blank band. */
const OVERSCAN = 8;
const FLASH_MS = 1200;

interface Column {
  field: keyof Item | 'key' | 'index';
  title: string;
  editable: boolean;
  className: string;
}

const COLUMNS: Column[] = [
  { field: 'index', title: '#', editable: false, className: 'c-index' },
  { field: 'key', title: 'SKU', editable: false, className: 'c-key' },
  { field: 'name', title: 'Item', editable: true, className: 'c-name' },
  { field: 'qty', title: 'Qty', editable: true, className: 'c-num' },
  { field: 'price', title: 'Price', editable: true, className: 'c-num' },
  { field: 'location', title: 'Location', editable: true, className: 'c-loc' },
  { field: 'by', title: 'Last edit by', editable: false, className: 'c-by' },
];

function cellText(col: Column, index: number, key: string, item: Item | undefined): string {
  if (col.field === 'index') return String(index + 1);
  if (col.field === 'key') return key;
  // Any JSON may be in the bucket: show what fits the columns, nothing for the rest.
  const v = item?.[col.field] as unknown;
  if (col.field === 'price') return typeof v === 'number' ? formatPrice(v) : '';
  return typeof v === 'string' || typeof v === 'number' ? String(v) : '';
}

/** Called when the user commits an edit; `value` is already parsed. */
export type EditHandler = (key: string, field: EditableField, value: string | number) => void;

/**
 * A virtualized, editable table over a {@link TableModel}: only the rows in view (plus a few)
 * exist in the DOM, so 100,000 rows scroll as smoothly as 100. Click an editable cell to edit
 * it in place; Enter or leaving the cell saves, Escape cancels.
 */
export class TableView {
  readonly element: HTMLElement;
  private readonly viewport: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly body: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly pool: HTMLElement[] = [];
  private drawnVersion = -1;
  private drawnFirst = -1;
  private frame = 0;
  private editing: { key: string; field: EditableField; input: HTMLInputElement } | null = null;

  constructor(
    private readonly model: TableModel<Item>,
    private readonly onEdit: EditHandler,
  ) {
    this.element = document.createElement('div');
    this.element.className = 'table';
    const head = document.createElement('div');
    head.className = 'row head';
    for (const col of COLUMNS) {
      const c = document.createElement('div');
      c.className = `cell ${col.className}`;
      c.textContent = col.title;
      if (col.editable) c.title = 'Click a cell to edit it';
      head.append(c);
    }
    this.viewport = document.createElement('div');
    this.viewport.className = 'viewport';
    this.viewport.dataset.testid = 'table-viewport';
    this.spacer = document.createElement('div');
    this.spacer.className = 'spacer';
    this.body = document.createElement('div');
    this.body.className = 'rows';
    this.empty = document.createElement('div');
    this.empty.className = 'empty';
    this.empty.textContent = 'No rows yet. Seed 100k rows or add one.';
    this.spacer.append(this.body);
    this.viewport.append(this.spacer, this.empty);
    this.element.append(head, this.viewport);
    this.viewport.addEventListener('scroll', () => this.schedule(), { passive: true });
    this.viewport.addEventListener('click', (ev) => this.onClick(ev));
    new ResizeObserver(() => this.schedule(true)).observe(this.viewport);
    this.schedule();
  }

  /** Redraws on the next frame if anything changed (call freely). */
  schedule(force = false): void {
    if (force) this.drawnVersion = -1;
    if (this.frame !== 0) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  /** Scrolls so row `index` is in view. */
  scrollTo(index: number): void {
    this.viewport.scrollTop = Math.max(0, index * ROW_HEIGHT - this.viewport.clientHeight / 3);
    this.schedule(true);
  }

  private draw(): void {
    const now = performance.now();
    const n = this.model.size;
    const first = Math.max(0, Math.floor(this.viewport.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const visible = Math.ceil(this.viewport.clientHeight / ROW_HEIGHT) + 2 * OVERSCAN;
    const last = Math.min(n, first + visible);
    const flashing = this.hasFlashes(first, last, now);
    if (this.model.version === this.drawnVersion && first === this.drawnFirst && !flashing) return;
    this.drawnVersion = this.model.version;
    this.drawnFirst = first;
    this.spacer.style.height = `${n * ROW_HEIGHT}px`;
    this.body.style.transform = `translateY(${first * ROW_HEIGHT}px)`;
    this.empty.hidden = n > 0;
    while (this.pool.length < last - first) this.pool.push(this.makeRow());
    let editingShown = false;
    for (let i = 0; i < this.pool.length; i++) {
      const row = this.pool[i] as HTMLElement;
      const index = first + i;
      const key = index < last ? this.model.keyAt(index) : undefined;
      if (key === undefined) {
        row.hidden = true;
        delete row.dataset.key;
        continue;
      }
      row.hidden = false;
      if (row.parentNode !== this.body) this.body.append(row);
      this.fillRow(row, index, key, now);
      if (this.editing?.key === key) editingShown = true;
    }
    // An edit whose row scrolled away (or was deleted) is abandoned.
    if (this.editing !== null && !editingShown) this.editing = null;
    if (flashing) this.schedule();
  }

  private hasFlashes(first: number, last: number, now: number): boolean {
    for (let i = first; i < last; i++) {
      const k = this.model.keyAt(i);
      const t = k === undefined ? undefined : this.model.touchedAt(k);
      if (t !== undefined && now - t < FLASH_MS) return true;
    }
    return false;
  }

  private makeRow(): HTMLElement {
    const row = document.createElement('div');
    row.className = 'row';
    for (const col of COLUMNS) {
      const c = document.createElement('div');
      c.className = `cell ${col.className}${col.editable ? ' editable' : ''}`;
      c.dataset.field = col.field;
      row.append(c);
    }
    return row;
  }

  private fillRow(row: HTMLElement, index: number, key: string, now: number): void {
    const item = this.model.get(key);
    row.dataset.key = key;
    const t = this.model.touchedAt(key);
    row.classList.toggle('flash', t !== undefined && now - t < FLASH_MS);
    row.classList.toggle('odd', index % 2 === 1);
    COLUMNS.forEach((col, ci) => {
      const cell = row.children[ci] as HTMLElement;
      const ed = this.editing;
      if (ed !== null && ed.key === key && ed.field === col.field) {
        if (ed.input.parentNode !== cell) {
          cell.textContent = '';
          cell.append(ed.input);
          ed.input.focus();
          ed.input.select();
        }
        return;
      }
      const text = cellText(col, index, key, item);
      if (cell.firstChild instanceof HTMLInputElement || cell.textContent !== text) cell.textContent = text;
    });
  }

  private onClick(ev: MouseEvent): void {
    const cell = (ev.target as HTMLElement).closest<HTMLElement>('.cell.editable');
    const row = cell?.closest<HTMLElement>('.row');
    const key = row?.dataset.key;
    const field = cell?.dataset.field as EditableField | undefined;
    if (cell == null || key === undefined || field === undefined || !(field in EDITABLE)) return;
    if (this.editing?.key === key && this.editing.field === field) return;
    this.startEdit(key, field);
  }

  /** Opens the editor on one cell (also used by keyboard shortcuts and tests). */
  startEdit(key: string, field: EditableField): void {
    const item = this.model.get(key);
    if (item === undefined) return;
    this.finishEdit(true);
    const input = document.createElement('input');
    input.className = 'cell-input';
    const current = item[field] as unknown;
    input.value =
      field === 'price' && typeof current === 'number'
        ? (current / 100).toFixed(2)
        : current === undefined
          ? ''
          : String(current);
    input.setAttribute('aria-label', `${field} of ${key}`);
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') this.finishEdit(true);
      else if (e.key === 'Escape') this.finishEdit(false);
    });
    input.addEventListener('blur', () => this.finishEdit(true));
    this.editing = { key, field, input };
    this.schedule(true);
  }

  private finishEdit(save: boolean): void {
    const ed = this.editing;
    if (ed === null) return;
    this.editing = null;
    if (save) {
      const parsed = EDITABLE[ed.field](ed.input.value);
      const item = this.model.get(ed.key);
      if (parsed !== undefined && item !== undefined && item[ed.field] !== parsed) {
        this.onEdit(ed.key, ed.field, parsed);
      }
    }
    ed.input.remove();
    this.schedule(true);
  }
}
