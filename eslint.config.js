// `npm run lint`: typescript-eslint's recommended rules, and the import rule that makes src/'s layout the
// architecture (docs/architecture.md, "Layout"): a folder of src/ imports only from itself and the folders below it,
// and no file takes part in an import cycle.
import js from '@eslint/js';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import importX from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

/** src/'s folders, bottom first. src/index.ts (the public API) may import any of them. */
export const LAYERS = [
  'config',
  'model',
  'observability',
  'store',
  'queue',
  'capture',
  'routing',
  'delivery',
  'admin',
  'sns',
  'functions',
  'streams',
  'app',
];

/** For each folder, the folders above it: importing from them is an upward import. */
const zones = LAYERS.map((layer, i) => ({
  target: `./src/${layer}`,
  from: LAYERS.slice(i + 1).map((above) => `./src/${above}`),
  message: `src/${layer}/ is below these folders (bottom first: ${LAYERS.join(' → ')}); import only from its own folder and those below it, or move the shared piece down (docs/architecture.md, "Layout").`,
})).filter((zone) => zone.from.length > 0);

export default tseslint.config(
  {
    ignores: ['dist/**', 'node_modules/**', 'bench/results/**', 'src/app/http/dashboard/public/**', 'test/fixtures/**'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    // import-x reads .ts files only when told (its default extensions are JavaScript's); its no-cycle is inert otherwise.
    settings: {
      ...importX.flatConfigs.typescript.settings,
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: 'tsconfig.json' })],
    },
  },
  {
    files: ['**/*.ts'],
    rules: {
      // A leading underscore marks what is unused on purpose (a parameter an interface requires, a field left out).
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
    },
  },
  {
    // Tests and probes read JSON answers and pg rows whose shape the assertion states; `any` is how they read them.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      'import-x/no-restricted-paths': ['error', { zones }],
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
