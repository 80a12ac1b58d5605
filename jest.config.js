/** @type {import('jest').Config} */
const swc = [
  '@swc/jest',
  { jsc: { target: 'es2022', parser: { syntax: 'typescript' } }, module: { type: 'commonjs' } },
];

module.exports = {
  // Temporal integration tests run serially (--runInBand) and may take minutes.
  testTimeout: 180_000,
  projects: [
    {
      displayName: 'unit',
      transform: { '^.+\\.ts$': swc },
      testEnvironment: 'node',
      testMatch: ['<rootDir>/test/**/*.unit.test.ts'],
      setupFilesAfterEnv: ['<rootDir>/test/support/fingerprint-hash.ts'],
    },
    {
      displayName: 'integration',
      transform: { '^.+\\.ts$': swc },
      testEnvironment: 'node',
      testMatch: ['<rootDir>/test/**/*.int.test.ts'],
      setupFilesAfterEnv: ['<rootDir>/test/support/fingerprint-hash.ts'],
      globalSetup: '<rootDir>/test/support/global-setup.ts',
    },
  ],
};
