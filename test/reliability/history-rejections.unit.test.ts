/** Rejection reasons on their way into Temporal's history lose the row values they quote (activities/sync-activities.ts). */
import { withoutRowValues } from '../../activities/sync-activities';
import type { RowRejection } from '../../src/sync/types';

const masked = (key: string | null, reason: string): string =>
  withoutRowValues({ key, reason, stage: 'validation' }).reason;

test.each<[string | null, string, string]>([
  [
    'u-00001',
    'time from column "email": "person.3@mailbox.example" is not a timestamp (ms since the epoch, ISO 8601 timestamp or date)',
    'time from column "email": "…" is not a timestamp (ms since the epoch, ISO 8601 timestamp or date)',
  ],
  [
    'u-00002',
    'user_properties.logins from column "logins": "many" is not a number to $add',
    'user_properties.logins from column "logins": "…" is not a number to $add',
  ],
  [
    'abc',
    'user_id "abc" is shorter than the minimum id length 5',
    'user_id "abc" is shorter than the minimum id length 5',
  ],
  [null, 'NULL value in key column "user_id"', 'NULL value in key column "user_id"'],
  ['k"1', 'duplicate key "k\\"1" appears 2 times in the model', 'duplicate key "k\\"1" appears 2 times in the model'],
  [
    'u-00003',
    'Amplitude /batch answered 400 (Invalid field values on some events): invalid value in "user_properties"; missing "event_type"',
    'Amplitude /batch answered 400 (Invalid field values on some events): invalid value in "user_properties"; missing "event_type"',
  ],
  [
    'u-00004',
    'user_properties.$set.plan is 1500 characters; Amplitude accepts at most 1024',
    'user_properties.$set.plan is 1500 characters; Amplitude accepts at most 1024',
  ],
])('key %j: %s', (key, reason, expected) => {
  expect(masked(key, reason)).toBe(expected);
});

test('the key and the stage are kept as they are', () => {
  const r: RowRejection = { key: 'u-1', reason: 'x from column "c": "secret" is not text', stage: 'amplitude' };
  expect(withoutRowValues(r)).toEqual({ key: 'u-1', reason: 'x from column "c": "…" is not text', stage: 'amplitude' });
});
