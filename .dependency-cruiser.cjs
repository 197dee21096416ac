// Import rules checked by `npm test` (test/architecture/imports.test.ts) and `npm run lint:imports`.
// Layers, top to bottom; a module may import its own layer or lower ones, never a higher one, and no cycles.
const LAYERS = [
  ['cli', 'index.ts'],            // command line and the library entry
  ['train', 'eval', 'export'],    // what the commands do
  ['recipe', 'data', 'model'],    // what a run is made of
  ['io', 'quant', 'perf'],        // file formats, number formats, kernels
  ['util', 'errors.ts'],          // small shared types and helpers
];
const re = (names) => `^src/(${names.map((n) => n.replace('.', '\\.')).join('|')})($|/)`;

const upward = LAYERS.slice(1).map((layer, i) => ({
  name: `no-upward-import-from-${layer.join('-').replace('.ts', '')}`,
  comment: `${layer.join(', ')} must not import from the layers above it (${LAYERS.slice(0, i + 1).flat().join(', ')})`,
  severity: 'error',
  from: { path: re(layer) },
  to: { path: re(LAYERS.slice(0, i + 1).flat()) },
}));

module.exports = {
  forbidden: [
    ...upward,
    { name: 'no-folder-cycles', comment: 'two folders must not import each other, even through other files', severity: 'error', scope: 'folder', from: { path: '^src/[^/]+' }, to: { circular: true } },
    { name: 'no-cycles', comment: 'import cycles make the layering meaningless', severity: 'error', from: { path: '^src/' }, to: { circular: true } },
    { name: 'no-src-to-tests', severity: 'error', from: { path: '^src/' }, to: { path: '^(test|bench|scripts)/' } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^src/',
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
