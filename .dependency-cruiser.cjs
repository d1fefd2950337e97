/**
 * Import rules (docs/architecture.md): imports point down
 *   cli → app.ts → api → directories → policy-file → audit → check → policy → propagation → delivery
 *   → derivation → storage → observability → config → scim → runtime → domain
 * (scim/ is the pure SCIM protocol layer; directories/ maps it onto policy writes; delivery/ sits
 * under propagation and policy: their transactions record its events and outbox rows; runtime/ is
 * the background engines' poll/wake loop)
 * so no folder of src/ imports a folder above it (which also rules out cycles between folders);
 * domain/ imports nothing but itself; dashboard/ imports nothing of src/; src/ never imports bench/.
 * Run by `npm test` (test/unit/dependencies.test.ts) and by hand with `npm run deps`.
 */
const LAYERS = ['domain', 'runtime', 'scim', 'config', 'observability', 'storage', 'derivation', 'delivery', 'propagation', 'policy', 'check', 'audit', 'policy-file', 'directories', 'api', 'app', 'cli'];
const pathOf = (layer) => (layer === 'app' ? '^src/app\\.ts$' : `^src/${layer}/`);

const downOnly = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `${layer}-imports-down-only`,
  comment: `src/${layer} may import only the layers below it: ${LAYERS.slice(0, i).join(', ') || '(none)'}`,
  severity: 'error',
  from: { path: pathOf(layer) },
  to: { path: LAYERS.slice(i + 1).map(pathOf).join('|') },
}));

module.exports = {
  forbidden: [
    ...downOnly,
    {
      name: 'domain-is-pure',
      comment: 'src/domain imports nothing but itself: no storage, no framework, no I/O',
      severity: 'error',
      from: { path: '^src/domain/' },
      to: { pathNot: '^src/domain/' },
    },
    {
      name: 'dashboard-uses-the-http-api-only',
      comment: 'dashboard/ is static files over the public HTTP API',
      severity: 'error',
      from: { path: '^dashboard/' },
      to: { path: '^src/' },
    },
    {
      name: 'src-never-imports-bench',
      comment: 'the benchmark harness needs the dev dependencies; `lockstep bench` runs it as a child process',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^bench/' },
    },
    {
      name: 'no-circular',
      comment: 'no import cycles between modules anywhere (src/, bench/, test/)',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'an import that does not resolve would hide an edge from the rules above',
      severity: 'error',
      from: {},
      // dashboard/vendor/* is not a folder: the server maps those names to files of installed npm
      // packages (VENDOR in src/api/routes/dashboard.ts; test/browser/dashboard-assets.test.ts).
      to: { couldNotResolve: true, pathNot: '^\\.\\./vendor/[a-z]+\\.js$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|bench/results)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'], exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
