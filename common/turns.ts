// Turns of the event loop for long batch work (materialize, offline reads) inside a serving process.

const waiting: Array<() => void> = [];

function releaseOne(): void {
  waiting.shift()?.();
  if (waiting.length > 0) setImmediate(releaseOne);
}

/**
 * Resolves on a later turn of the event loop, one waiter per turn. Work that takes a turn before each
 * step lets the process poll its sockets between steps; one waiter per turn (rather than every waiter of
 * a setImmediate at once) matters when many streams step together: a merge of many views converts a DuckDB
 * chunk of each at about the same moment, and released together they would hold a serving process.
 */
export function takeTurn(): Promise<void> {
  return new Promise((resolve) => {
    waiting.push(resolve);
    if (waiting.length === 1) setImmediate(releaseOne);
  });
}
