// What the panel remembers between sessions (Photoshop restarts): the daemon to use and the last
// choices. Stored in UXP's localStorage when there is one; the tests run without it.

export interface PanelState {
  socket: string; // empty: $KILN_SOCKET or the per-user default, as every Kiln client
  daemon: string; // the kilnd program chosen with 'Daemon...' (empty: found as the CLI finds it)
  model: string;
  dataset: string;
}

const KEY = "kiln.panel.state";

interface Storage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

function storage(): Storage | null {
  const g = globalThis as { localStorage?: Storage };
  return g.localStorage ?? null;
}

export function defaultState(): PanelState {
  return { socket: "", daemon: "", model: "", dataset: "" };
}

export function loadState(): PanelState {
  try {
    const text = storage()?.getItem(KEY);
    return { ...defaultState(), ...(text ? (JSON.parse(text) as Partial<PanelState>) : {}) };
  } catch {
    return defaultState(); // an unreadable entry is not worth an error
  }
}

export function saveState(state: PanelState): void {
  storage()?.setItem(KEY, JSON.stringify(state));
}
