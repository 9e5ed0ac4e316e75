// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Packages and layers the pure decision core must never reach (SPEC: pure, no I/O). */
const domainRestrictedImports = {
  paths: [
    'fastify',
    'pino',
    'undici',
    'piscina',
    'better-sqlite3',
    'pg',
    'prom-client',
    'close-with-grace',
    'fs',
    'node:fs',
    'fs/promises',
    'node:fs/promises',
    'net',
    'node:net',
    'http',
    'node:http',
    'child_process',
    'node:child_process',
    'worker_threads',
    'node:worker_threads'
  ].map((name) => ({ name, message: 'src/domain is the pure decision core: no I/O, no framework, no storage.' })),
  patterns: [
    { group: ['@fastify/*', 'fastify-*'], message: 'src/domain must not depend on the HTTP layer.' },
    { group: ['**/http/**', '**/store/**', '**/jobs/**', '**/service/**', '**/server', '**/server.js', '**/config', '**/config.js', '**/logger', '**/logger.js'], message: 'src/domain must not import outer layers.' }
  ]
};

/**
 * The layers around the core, outermost first: http (talks to the service only), service (owns
 * the state, persistence and jobs), and the parts behind it (store, jobs, sim), which know the
 * core and nothing of each other or of the layers above them. Types may cross (allowTypeImports)
 * where they describe what a layer hands on; code may not.
 */
function layer(message, groups) {
  return ['error', { patterns: [{ group: groups, message, allowTypeImports: true }] }];
}
const outer = ['**/server', '**/server.js', '**/config', '**/config.js'];
const layerRules = {
  'src/http/**/*.ts': layer('src/http talks to the service (src/service) only, never to the store or the flush jobs behind it.', ['**/store/**', '**/jobs/**', ...outer]),
  'src/service/**/*.ts': layer('src/service must not depend on the HTTP layer.', ['**/http/**', ...outer]),
  'src/store/**/*.ts': layer('src/store keeps state: it knows the core, not the layers that use it.', ['**/http/**', '**/service/**', '**/jobs/**', '**/sim/**', ...outer]),
  'src/jobs/**/*.ts': layer('src/jobs plans flushes: it knows the core, not the layers that use it.', ['**/http/**', '**/service/**', '**/store/**', '**/sim/**', ...outer]),
  'src/contract/**/*.ts': layer('src/contract describes the API from the core\'s constants: it knows the core, not the layers that serve or call it.', ['**/http/**', '**/service/**', '**/store/**', '**/jobs/**', '**/client/**', ...outer]),
  'src/sim/**/*.ts': layer('src/sim simulates on the core alone: no HTTP, service, store or flush jobs.', ['**/http/**', '**/service/**', '**/store/**', '**/jobs/**', ...outer])
};

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'data/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js', 'bin/*.js'] }, tsconfigRootDir: import.meta.dirname }
    },
    rules: {
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
      eqeqeq: 'error'
    }
  },
  {
    files: ['src/domain/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', domainRestrictedImports],
      'no-restricted-globals': ['error', { name: 'Date', message: 'time is passed in to the core' }, { name: 'process', message: 'the core reads no environment' }]
    }
  },
  ...Object.entries(layerRules).map(([glob, rule]) => ({ files: [glob], rules: { '@typescript-eslint/no-restricted-imports': rule } })),
  {
    files: ['bench/**/*.ts', 'scripts/**/*.ts'],
    rules: { 'no-console': 'off' }
  },
  {
    files: ['eslint.config.js', 'bin/*.js'],
    ...tseslint.configs.disableTypeChecked
  }
);
