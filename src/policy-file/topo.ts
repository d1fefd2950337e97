/**
 * Orders a file's resources so that every parent defined in the file comes before its children,
 * whatever order the file lists them in; parents the file does not define are left to the store.
 * Iterative depth-first walk (a deep chain must not overflow the stack), stable: resources keep
 * their file order wherever the hierarchy allows.
 */
export interface Node {
  ref: string;
  parent: string | null;
}

export function sortResources<T extends Node>(resources: readonly T[]): { sorted: T[] } | { cycle: T[] } {
  const byRef = new Map(resources.map((r) => [r.ref, r]));
  const state = new Map<string, 'visiting' | 'done'>();
  const sorted: T[] = [];
  for (const start of resources) {
    if (state.get(start.ref) === 'done') continue;
    // Walk up to the first ancestor that is done or not in the file, then emit on the way down.
    const chain: T[] = [];
    let node: T | undefined = start;
    while (node && state.get(node.ref) !== 'done') {
      if (state.get(node.ref) === 'visiting') return { cycle: chain.slice(chain.indexOf(node)) };
      state.set(node.ref, 'visiting');
      chain.push(node);
      node = node.parent === null ? undefined : byRef.get(node.parent);
    }
    for (let i = chain.length - 1; i >= 0; i--) {
      state.set(chain[i]!.ref, 'done');
      sorted.push(chain[i]!);
    }
  }
  return { sorted };
}

export interface Edge {
  parent: string;
  child: string;
}

/**
 * A cycle among nested-group edges (`child` is a member of `parent`), as the edges that make it in
 * order — each one's child is the next one's parent, the last one's child the first one's parent —
 * or null. The last edge is the one that closes the cycle in file order. Iterative.
 */
export function findGroupCycle<T extends Edge>(edges: readonly T[]): T[] | null {
  // Add edges in file order; before each (parent P ⊃ child C), look for a chain C ⊃ … ⊃ P so far.
  const below = new Map<string, T[]>();
  for (const e of edges) {
    const reachedBy = new Map<string, T | null>([[e.child, null]]);
    const todo = [e.child];
    while (todo.length) {
      const g = todo.pop()!;
      if (g === e.parent) {
        const chain: T[] = [];
        for (let x = reachedBy.get(g); x; x = reachedBy.get(x.parent)) chain.unshift(x);
        return [...chain, e];
      }
      for (const next of below.get(g) ?? []) {
        if (!reachedBy.has(next.child)) {
          reachedBy.set(next.child, next);
          todo.push(next.child);
        }
      }
    }
    below.set(e.parent, [...(below.get(e.parent) ?? []), e]);
  }
  return null;
}
