import type { Bucket } from '@mittsync/peer';
import { useBucket, useClient, useQuery, useStatus } from '@mittsync/react';
import { type FormEvent, memo, Suspense, useState } from 'react';
import { renders } from './renders';

/** A todo: the value stored under `todo/<id>` (ids sort by creation time). */
export interface Todo {
  title: string;
  done: boolean;
}

let made = 0;

/** A new todo's key: creation time, then a count for this tab, then a random tail for other tabs. */
function newKey(): string {
  const count = (made++).toString(36).padStart(4, '0');
  return `todo/${Date.now().toString(36).padStart(9, '0')}-${count}-${Math.random().toString(36).slice(2, 6)}`;
}

function report(what: string) {
  return (e: unknown) => console.error(`${what} failed:`, e);
}

/** Connection, sync phase and unsent writes, in one word and a count. */
function StatusBadge({ bucket }: { bucket: string }) {
  renders.badge++;
  const s = useStatus(bucket);
  const state =
    s.lastError !== null
      ? 'error'
      : s.connection !== 'open'
        ? 'offline'
        : !s.ready || s.phase !== 'ready'
          ? 'syncing'
          : s.pending > 0
            ? 'saving'
            : 'synced';
  const label = {
    error: `Error: ${s.lastError?.code}`,
    offline: s.pending > 0 ? `Offline · ${s.pending} unsent` : 'Offline',
    syncing: 'Syncing…',
    saving: `Saving ${s.pending}…`,
    synced: 'Synced',
  }[state];
  return (
    <span className={`badge ${state}`} data-testid="sync-badge" data-state={state} data-pending={s.pending}>
      {label}
    </span>
  );
}

/** Cuts or restores this device's relay connection (edits go on locally meanwhile). */
function OnlineToggle() {
  const client = useClient();
  const [offline, setOffline] = useState(false);
  const toggle = () => {
    const next = !offline;
    setOffline(next);
    client.setOnline(!next).catch(report('going online/offline'));
  };
  return (
    <button type="button" data-testid="online-toggle" onClick={toggle}>
      {offline ? 'Go online' : 'Go offline'}
    </button>
  );
}

function NewTodo({ todos }: { todos: Bucket<Todo> }) {
  const [title, setTitle] = useState('');
  const add = (e: FormEvent) => {
    e.preventDefault();
    const t = title.trim();
    if (t === '') return;
    setTitle('');
    todos.put(newKey(), { title: t, done: false }).catch(report('adding a todo'));
  };
  return (
    <form onSubmit={add} className="new">
      <input
        data-testid="new-title"
        placeholder="What needs doing?"
        value={title}
        onChange={(e) => setTitle(e.target.value)}
      />
      <button type="submit" data-testid="add">
        Add
      </button>
    </form>
  );
}

/**
 * One row. Memoized: the list hands it the same `todo` object while its key is unchanged (the
 * live query's snapshots keep untouched rows), so a change to another todo skips this one.
 */
const TodoItem = memo(function TodoItem({
  id,
  todo,
  todos,
}: {
  id: string;
  todo: Todo;
  todos: Bucket<Todo>;
}) {
  renders.items[id] = (renders.items[id] ?? 0) + 1;
  return (
    <li data-testid="todo" data-key={id} className={todo.done ? 'done' : undefined}>
      <label>
        <input
          type="checkbox"
          checked={todo.done}
          onChange={() => todos.put(id, { ...todo, done: !todo.done }).catch(report('toggling'))}
        />
        <span data-testid="title">{todo.title}</span>
      </label>
      <button
        type="button"
        aria-label={`Delete ${todo.title}`}
        onClick={() => todos.delete(id).catch(report('deleting'))}
      >
        ×
      </button>
    </li>
  );
});

function TodoList({ todos }: { todos: Bucket<Todo> }) {
  renders.list++;
  const snap = useQuery(todos, { prefix: 'todo/' });
  renders.deliveries = snap.version;
  if (snap.loading) return <p>Loading…</p>;
  const left = snap.rows.filter((r) => !r.value.done).length;
  return (
    <>
      <ul className="todos" data-testid="todos">
        {snap.rows.map((r) => (
          <TodoItem key={r.key} id={r.key} todo={r.value} todos={todos} />
        ))}
      </ul>
      <p className="count" data-testid="left">
        {left} left of {snap.rows.length}
      </p>
    </>
  );
}

/** Suspends until the bucket has caught up once (at once on a device that joined it before). */
function Board({ name }: { name: string }) {
  const todos = useBucket<Todo>(name, { suspense: true });
  return (
    <>
      <NewTodo todos={todos} />
      <TodoList todos={todos} />
    </>
  );
}

export function App({ bucket }: { bucket: string }) {
  return (
    <main>
      <header>
        <h1>Todos</h1>
        <StatusBadge bucket={bucket} />
        <OnlineToggle />
      </header>
      <Suspense fallback={<p data-testid="joining">Joining…</p>}>
        <Board name={bucket} />
      </Suspense>
    </main>
  );
}
