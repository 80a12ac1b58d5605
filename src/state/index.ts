/**
 * The sync state store, opened from a URL:
 *
 *   const state = openStateStore('sqlite:.ampsync/data/state.db');        // embedded, one worker
 *   const state = openStateStore('postgres://ampsync@db:5432/ampsync');   // shared by workers on several machines
 *   await state.migrate();
 */
import { StateConfigError } from './errors';
import { PostgresStateStore } from './postgres';
import { SqliteStateStore } from './sqlite';
import type { StateStore } from './types';

export { PostgresStateStore } from './postgres';
export type { PostgresStateStoreOptions } from './postgres';
export { SqliteStateStore } from './sqlite';
export type { SqliteStateStoreOptions } from './sqlite';
export {
  RunNotFoundError,
  StateConfigError,
  StateConflictError,
  StateDatabaseError,
  StateError,
  StateUnavailableError,
} from './errors';
export type { StateErrorType } from './errors';
export type * from './types';

export interface OpenStateStoreOptions {
  /** PostgreSQL schema of the tables (default `ampsync`). */
  schema?: string;
  /** PostgreSQL connections per process. */
  poolSize?: number;
  /** Clock for run and rejection times. */
  now?: () => Date;
}

/** A URL scheme, as in `postgres:` (a Windows drive letter is not one). */
const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]+):/;

/** Opens the store a URL names: `sqlite:/path/state.db` (or a plain path), `postgres://...`, `postgresql://...`. */
export function openStateStore(url: string, options: OpenStateStoreOptions = {}): StateStore {
  const scheme = SCHEME.exec(url)?.[1]?.toLowerCase();
  const now = options.now === undefined ? {} : { now: options.now };
  if (scheme === undefined || scheme === 'sqlite') {
    const file = scheme === undefined ? url : sqlitePath(url);
    if (file === '') throw new StateConfigError(`state store URL "${url}" names no SQLite file`);
    return new SqliteStateStore({ file, ...now });
  }
  if (scheme === 'postgres' || scheme === 'postgresql') {
    return new PostgresStateStore({
      connectionString: url,
      ...now,
      ...(options.schema === undefined ? {} : { schema: options.schema }),
      ...(options.poolSize === undefined ? {} : { poolSize: options.poolSize }),
    });
  }
  // the scheme only: the rest of a URL may carry a password
  throw new StateConfigError(
    `unsupported state store URL scheme "${scheme}:" (expected sqlite:/path/state.db, postgres:// or postgresql://)`,
  );
}

/** `sqlite:/abs.db`, `sqlite:rel.db`, `sqlite:///abs.db` → the file path. */
function sqlitePath(url: string): string {
  const rest = url.slice('sqlite:'.length);
  return rest.startsWith('//') ? rest.slice(2) : rest;
}
