// Type-aware lint: the rule that matters most here is no-floating-promises,
// since a dropped promise in the step loop is a silent hang.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'runs/**', 'deploy/**', 'scripts/**', 'coordinator/dashboard/static/**', 'eslint.config.mjs'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] }] }],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', {
        selector: "NewExpression[callee.name='Error']",
        message: 'Throw a typed LockstepError subclass from shared/errors.ts instead of a bare Error.',
      }],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: { 'no-restricted-syntax': 'off' },
  },
);
