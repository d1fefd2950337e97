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
