/**
 * The BigQuery client's transport (teeny-request) loads node-fetch with `import()`, which Jest's CommonJS sandbox
 * cannot run without --experimental-vm-modules. Test files load the client (and its auth library) with Node's own
 * loader instead, so they exercise the real client either way:
 *
 *   jest.mock('@google-cloud/bigquery', () => jest.requireActual<NativeLoader>('./native-client').loadNatively('@google-cloud/bigquery'));
 */
interface NodeModuleLoader {
  _load(request: string, parent: unknown, isMain: boolean): unknown;
}

export interface NativeLoader {
  loadNatively(name: string): unknown;
}

/** Loads `name` with Node's loader, outside Jest's module registry (its own requires and imports run natively). */
export function loadNatively(name: string): unknown {
  const nodeModule = jest.requireActual<NodeModuleLoader>('node:module');
  return nodeModule._load(require.resolve(name), null, false);
}

/**
 * The host process's environment. Jest gives the sandbox a copy of `process.env`; natively loaded modules (the
 * client, google-auth-library, gcp-metadata) read the real one.
 */
export function hostEnv(): NodeJS.ProcessEnv {
  const nodeModule = jest.requireActual<NodeModuleLoader>('node:module');
  return (nodeModule._load('process', null, false) as NodeJS.Process).env;
}
