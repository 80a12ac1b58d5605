import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  ConfigError,
  findSync,
  loadSyncsFile,
  parseSyncsFile,
  resolveSecret,
  SecretError,
} from '../../src/config/load';

const base = `
version: 1
defaults:
  source: { project: p1, location: EU }
  destination: { apiKey: { env: AMP_KEY } }
syncs:
  - id: users
    object: users
    model: { sql: "SELECT user_id, plan FROM d.users" }
    key: user_id
    mappings:
      - { from: user_id, to: user_id }
      - { from: plan, to: user_properties.plan, op: $setOnce }
`;

function issuesOf(text: string): string[] {
  try {
    parseSyncsFile(text, 'syncs.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toContain('syncs.yaml is invalid');
    return (err as ConfigError).issues;
  }
  throw new Error('expected the file to be rejected');
}

test('a valid file parses, with defaults merged and option defaults applied', () => {
  const file = parseSyncsFile(base, 'syncs.yaml');
  const sync = findSync(file, 'users');
  expect(sync.source).toEqual({ type: 'bigquery', project: 'p1', location: 'EU' });
  expect(sync.destination).toEqual({ apiKey: { env: 'AMP_KEY' }, region: 'us' });
  expect(sync.options).toMatchObject({ nullPolicy: 'skip', chunkSize: 10_000, concurrency: 4, minIdLength: 5 });
  expect(sync.mappings[1]).toEqual({ from: 'plan', to: 'user_properties.plan', op: '$setOnce' });
});

test('a source names its state dataset, or false for read-only mode (the diff in the worker)', () => {
  const named = parseSyncsFile(base.replace('location: EU }', 'location: EU, stateDataset: crm_state }'), 's.yaml');
  expect(findSync(named, 'users').source.stateDataset).toBe('crm_state');
  const readOnly = parseSyncsFile(base.replace('location: EU }', 'location: EU, stateDataset: false }'), 's.yaml');
  expect(findSync(readOnly, 'users').source.stateDataset).toBe(false);
});

test('the demo syncs file is valid', () => {
  const file = loadSyncsFile(path.join(__dirname, '..', '..', 'examples', 'demo', 'ampsync.yaml'));
  expect(file.syncs.map((s) => [s.id, s.object])).toEqual([
    ['demo-users', 'users'],
    ['demo-devices', 'devices'],
    ['demo-accounts', 'groups'],
    ['demo-events', 'events'],
  ]);
});

test.each([
  [
    'an unknown key',
    base.replace('key: user_id', 'key: user_id\n    colour: red'),
    /syncs\[0\]: Unrecognized key: "colour" \(sync "users"\)/,
  ],
  [
    'a wrong type',
    base.replace('object: users', 'object: people'),
    /syncs\[0\]\.object: Invalid option: expected one of "users"\|"devices"\|"groups"\|"events"/,
  ],
  [
    'an unknown target',
    base.replace('user_properties.plan', 'plan_name'),
    /syncs\[0\]\.mappings\[1\]\.to: expected a special field/,
  ],
  [
    'a users sync without user_id',
    base.replace('{ from: user_id, to: user_id }', '{ from: user_id, to: device_id }'),
    /syncs\[0\]\.mappings: a users sync maps a column to "user_id"/,
  ],
  [
    'from and constant together',
    base.replace('{ from: user_id, to: user_id }', '{ from: user_id, constant: x, to: user_id }'),
    /give exactly one of "from"/,
  ],
  [
    'an op on a special field',
    base.replace('{ from: user_id, to: user_id }', '{ from: user_id, to: user_id, op: $add }'),
    /syncs\[0\]\.mappings\[0\]\.op: an "op" applies only/,
  ],
  [
    'a schedule with cron and every',
    base + '    schedule: { cron: "0 * * * *", every: 1h }\n',
    /syncs\[0\]\.schedule: give exactly one of "cron" or "every"/,
  ],
  [
    'a bad interval',
    base + '    schedule: { every: hourly }\n',
    /syncs\[0\]\.schedule\.every: a number followed by s, m, h or d/,
  ],
  [
    'a groups sync without groupType',
    base
      .replace('object: users', 'object: groups')
      .replace(/mappings:[\s\S]*/, 'mappings:\n      - { from: plan, to: group_properties.plan }\n'),
    /syncs\[0\]\.groupType: a groups sync names its "groupType"/,
  ],
  [
    'an events sync without event_type',
    base.replace('object: users', 'object: events').replace(', op: $setOnce', ''),
    /an events sync maps "event_type"/,
  ],
  [
    'a secret written inline',
    base.replace('apiKey: { env: AMP_KEY }', 'apiKey: abc123'),
    /defaults\.destination\.apiKey: expected a reference \{ env: VARIABLE \} or \{ file: PATH \}, never the secret itself/,
  ],
  ['a bad chunk size', base + '    options: { chunkSize: 5 }\n', /syncs\[0\]\.options\.chunkSize: Too small/],
  [
    'a state dataset that is neither a name nor false',
    base.replace('location: EU }', 'location: EU, stateDataset: true }'),
    /defaults\.source\.stateDataset: expected a dataset name \(letters, digits and "_"\), or false to diff in the worker/,
  ],
  [
    'a state dataset name BigQuery refuses',
    base.replace('location: EU }', 'location: EU, stateDataset: "crm.state" }'),
    /defaults\.source\.stateDataset: expected a dataset name/,
  ],
])('%s is reported with the file and the path', (_what, text, pattern) => {
  const issues = issuesOf(text);
  expect(issues.join('\n')).toMatch(pattern);
});

test('duplicate ids, and YAML syntax errors, are reported', () => {
  const twice = base + base.slice(base.indexOf('  - id: users'));
  expect(issuesOf(twice).join('\n')).toMatch(/syncs\[1\]\.id: "users" is already the id of syncs\[0\]/);
  expect(issuesOf('syncs: [\n  - id: x\n').join('\n')).toMatch(/YAML syntax/);
});

test('a missing file and an unknown sync id name what is missing', () => {
  expect(() => loadSyncsFile('/nonexistent/ampsync.yaml')).toThrow(
    /cannot read syncs file \/nonexistent\/ampsync.yaml: ENOENT/,
  );
  expect(() => findSync(parseSyncsFile(base, 'syncs.yaml'), 'nope')).toThrow(
    /syncs.yaml has no sync "nope" \(it has: users\)/,
  );
});

test('secrets resolve from env or file, and errors name the reference, never a value', () => {
  process.env.AMPSYNC_TEST_SECRET = ' s3cret-value \n';
  expect(resolveSecret({ env: 'AMPSYNC_TEST_SECRET' }, 'key of sync "u"')).toBe('s3cret-value');
  delete process.env.AMPSYNC_TEST_SECRET_MISSING;
  expect(() => resolveSecret({ env: 'AMPSYNC_TEST_SECRET_MISSING' }, 'key of sync "u"')).toThrow(
    new SecretError('key of sync "u": environment variable AMPSYNC_TEST_SECRET_MISSING is not set on this worker'),
  );
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-secret-'));
  const file = path.join(dir, 'key');
  fs.writeFileSync(file, 'from-file\n');
  expect(resolveSecret({ file }, 'k')).toBe('from-file');
  expect(() => resolveSecret({ file: path.join(dir, 'none') }, 'k')).toThrow(
    /cannot read secret file .*none \(ENOENT\)/,
  );
  fs.rmSync(dir, { recursive: true });
});
