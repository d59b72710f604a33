/**
 * Keyed re-rendering of lists: a periodic refresh touches only the rows whose data
 * changed, so the sidebar keeps its scroll position, its selection and a focused button.
 *
 * `planRows` is the pure decision (tested in test/rows.test.ts); `syncRows` applies it to
 * a container whose children carry `data-key` and `data-signature` (sidebar.ts uses it for
 * overlays, revisions and models).
 */

export interface IKeyed {
  key: string;
  /** Anything that changes when the row must be drawn again (e.g. its JSON). */
  signature: string;
}

export interface IRowPlan {
  /** Keys of rows to drop. */
  remove: string[];
  /** Keys of new rows. */
  add: string[];
  /** Keys of kept rows whose signature changed. */
  update: string[];
  /** The keys in their new order. */
  order: string[];
}

/** What to do to go from the rows shown (`previous`: key -> signature) to `next`. */
export function planRows(
  previous: ReadonlyMap<string, string>,
  next: ReadonlyArray<IKeyed>
): IRowPlan {
  const seen = new Set<string>();
  const plan: IRowPlan = { remove: [], add: [], update: [], order: [] };
  for (const item of next) {
    if (seen.has(item.key)) {
      continue; // a duplicate key keeps its first row
    }
    seen.add(item.key);
    plan.order.push(item.key);
    const before = previous.get(item.key);
    if (before === undefined) {
      plan.add.push(item.key);
    } else if (before !== item.signature) {
      plan.update.push(item.key);
    }
  }
  for (const key of previous.keys()) {
    if (!seen.has(key)) {
      plan.remove.push(key);
    }
  }
  return plan;
}

export interface IRowSpec<T> {
  key(item: T): string;
  signature(item: T): string;
  /** A new, empty row element (its content is drawn by `render`). */
  create(item: T): HTMLElement;
  /** Draw `item` into `row` (called for new rows and rows whose signature changed). */
  render(item: T, row: HTMLElement): void;
}

/** Bring `container`'s keyed children in line with `items`, touching only what changed. */
export function syncRows<T>(container: HTMLElement, items: readonly T[], spec: IRowSpec<T>): void {
  const rows = new Map<string, HTMLElement>();
  const previous = new Map<string, string>();
  for (const child of Array.from(container.children)) {
    const el = child as HTMLElement;
    const key = el.dataset.key;
    if (key === undefined) {
      el.remove();
      continue;
    }
    rows.set(key, el);
    previous.set(key, el.dataset.signature ?? '');
  }
  const byKey = new Map<string, { item: T; signature: string }>();
  const keyed: IKeyed[] = [];
  for (const item of items) {
    const key = spec.key(item);
    const signature = spec.signature(item);
    if (!byKey.has(key)) {
      byKey.set(key, { item, signature });
    }
    keyed.push({ key, signature });
  }
  const plan = planRows(previous, keyed);
  for (const key of plan.remove) {
    rows.get(key)?.remove();
    rows.delete(key);
  }
  const redraw = new Set([...plan.add, ...plan.update]);
  plan.order.forEach((key, index) => {
    const { item, signature } = byKey.get(key)!;
    let row = rows.get(key);
    if (!row) {
      row = spec.create(item);
      row.dataset.key = key;
      rows.set(key, row);
    }
    if (redraw.has(key)) {
      spec.render(item, row);
      row.dataset.signature = signature;
    }
    const at = container.children[index] ?? null;
    if (at !== row) {
      container.insertBefore(row, at);
    }
  });
}
