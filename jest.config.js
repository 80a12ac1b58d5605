/** @type {import('jest').Config} */
const swc = [
  '@swc/jest',
  { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } },
];

module.exports = {
  transform: { '^.+\\.ts$': swc },
  testEnvironment: 'node',
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  projects: [
    {
      displayName: 'unit',
      transform: { '^.+\\.ts$': swc },
      testEnvironment: 'node',
      testMatch: ['<rootDir>/test/**/*.unit.test.ts'],
    },
    {
      displayName: 'integration',
      transform: { '^.+\\.ts$': swc },
      testEnvironment: 'node',
      testMatch: ['<rootDir>/test/**/*.int.test.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      testTimeout: 120000,
    },
  ],
};
