import {
  RunNotFoundError,
  StateDatabaseError,
  StateUnavailableError,
  classifyDatabaseError,
  isTransientDatabaseError,
} from '../../src/state/errors';

const withCode = (message: string, code: string): Error => Object.assign(new Error(message), { code });

describe('classifyDatabaseError', () => {
  it.each([
    ['SQLITE_BUSY', 'database is locked'],
    ['SQLITE_BUSY_SNAPSHOT', 'database is locked'],
    ['SQLITE_LOCKED', 'database table is locked'],
    ['40001', 'could not serialize access due to concurrent update'],
    ['40P01', 'deadlock detected'],
    ['57P01', 'terminating connection due to administrator command'],
    ['08006', 'connection failure'],
    ['ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:5432'],
  ])('retries %s', (code, message) => {
    const err = classifyDatabaseError(withCode(message, code), 'PostgreSQL', 'commit chunk 3 of run "r" of sync "s"');
    expect(err).toBeInstanceOf(StateUnavailableError);
    expect(err).toMatchObject({ retryable: true, type: 'StateUnavailableError' });
    expect(err.message).toBe(
      `PostgreSQL state store could not commit chunk 3 of run "r" of sync "s": ${message} (${code})`,
    );
    expect((err as Error & { cause?: unknown }).cause).toBeInstanceOf(Error);
  });

  it.each([
    ['SQLITE_CORRUPT', 'database disk image is malformed'],
    ['SQLITE_READONLY', 'attempt to write a readonly database'],
    ['42P01', 'relation "ampsync.runs" does not exist'],
    ['28P01', 'password authentication failed for user "ampsync"'],
  ])('does not retry %s', (code, message) => {
    const err = classifyDatabaseError(withCode(message, code), 'SQLite (/tmp/state.db)', 'read chunk 0');
    expect(err).toBeInstanceOf(StateDatabaseError);
    expect(err.retryable).toBe(false);
  });

  it('retries a connection the server closed (pg errors without a code)', () => {
    expect(isTransientDatabaseError(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isTransientDatabaseError(new AggregateError([withCode('refused', 'ECONNREFUSED')]))).toBe(true);
  });

  it('passes a StateError through unchanged', () => {
    const err = new RunNotFoundError('users', 'r1');
    expect(classifyDatabaseError(err, 'SQLite', 'x')).toBe(err);
  });
});
