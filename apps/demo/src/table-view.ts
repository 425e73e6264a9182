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

/** The row key and field an editable cell shows now, or null for a cell in no row. */
function editTarget(cell: HTMLElement): { key: string; field: EditableField } | null {
  const key = cell.closest<HTMLElement>('.row')?.dataset.key;
  const field = cell.dataset.field;
  if (key === undefined || field === undefined || !(field in EDITABLE)) return null;
  return { key, field: field as EditableField };
}

/** The open editor: which cell it edits, and its input. */
interface Editor {
  key: string;
  field: EditableField;
  input: HTMLInputElement;
  /** False until a redraw first puts the input in its cell. */
  shown: boolean;
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
  private editing: Editor | null = null;
  /** The editable cell a pointer went down on, and the row it showed then (see {@link onPress}). */
  private pressed: { cell: HTMLElement; key: string; field: EditableField } | null = null;
  /** True while the table itself takes the editor's input out of the DOM (its blur is ours). */
  private detaching = false;

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
    this.viewport.addEventListener('pointerdown', (ev) => this.onPress(ev));
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
    // Leaving the cell saves: so does scrolling its row away (a deleted row has nothing to save).
    if (this.editing !== null && !editingShown) this.finishEdit(true, this.editing);
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
          // First shown, or its row now sits in another pooled element (rows above it were
          // added or removed, or the table scrolled): the input moves, and stays focused.
          this.detach(ed.input);
          cell.textContent = '';
          cell.append(ed.input);
          if (ed.shown) {
            ed.input.focus({ preventScroll: true });
          } else {
            ed.shown = true;
            ed.input.focus();
            ed.input.select();
          }
        }
        return;
      }
      const text = cellText(col, index, key, item);
      if (cell.firstChild instanceof HTMLInputElement) {
        this.detach(cell.firstChild);
        cell.textContent = text;
      } else if (cell.textContent !== text) cell.textContent = text;
    });
  }

  /**
   * Takes an input out of the DOM without the blur that Chromium fires on removing a focused
   * element closing the editor: the table moves or drops inputs on its own while it redraws.
   */
  private detach(input: HTMLInputElement): void {
    if (!input.isConnected) return;
    this.detaching = true;
    try {
      input.remove();
    } finally {
      this.detaching = false;
    }
  }

  /** Remembers which row's cell a pointer went down on (see {@link onClick}). */
  private onPress(ev: PointerEvent): void {
    const cell = (ev.target as HTMLElement).closest<HTMLElement>('.cell.editable');
    const target = cell === null ? null : editTarget(cell);
    this.pressed = cell === null || target === null ? null : { cell, ...target };
  }

  /**
   * Opens the editor on the cell clicked. The table reuses its row elements: a redraw between
   * the press and the click (a live write adding a row above, the table scrolling) can put
   * another key in the element clicked, so the click edits the row pressed, read at the press.
   */
  private onClick(ev: MouseEvent): void {
    const pressed = this.pressed;
    this.pressed = null;
    const cell = (ev.target as HTMLElement).closest<HTMLElement>('.cell.editable');
    if (cell === null) return;
    // A click with no press on this cell (a synthetic one) edits what the cell shows now.
    const target = pressed?.cell === cell ? pressed : editTarget(cell);
    if (target === null) return;
    if (this.editing?.key === target.key && this.editing.field === target.field) return;
    this.startEdit(target.key, target.field);
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
    const ed: Editor = { key, field, input, shown: false };
    // Each input ends its own editor only: a late event of an input already replaced must not
    // close the editor opened since.
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') this.finishEdit(true, ed);
      else if (e.key === 'Escape') this.finishEdit(false, ed);
    });
    input.addEventListener('blur', () => {
      if (!this.detaching) this.finishEdit(true, ed);
    });
    this.editing = ed;
    this.schedule(true);
  }

  private finishEdit(save: boolean, ed: Editor | null = this.editing): void {
    if (ed === null || this.editing !== ed) return;
    this.editing = null;
    if (save) {
      const parsed = EDITABLE[ed.field](ed.input.value);
      const item = this.model.get(ed.key);
      if (parsed !== undefined && item !== undefined && item[ed.field] !== parsed) {
        this.onEdit(ed.key, ed.field, parsed);
      }
    }
    this.detach(ed.input);
    this.schedule(true);
  }
}
