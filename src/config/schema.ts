/**
 * The syncs file: one zod schema is the source of truth for a sync and its TypeScript type.
 *
 *   version: 1
 *   syncs:
 *     - id: users
 *       object: users
 *       source: { project: my-project, location: US }
 *       model: { sql: "SELECT user_id, plan, ltv FROM analytics.users" }
 *       key: user_id
 *       mappings:
 *         - { from: user_id, to: user_id }
 *         - { from: plan, to: user_properties.plan }
 *         - { from: ltv, to: user_properties.lifetime_value, op: $set }
 *       destination: { apiKey: { env: AMPLITUDE_API_KEY }, region: us }
 *       schedule: { cron: "0 * * * *", timezone: Europe/Berlin }
 */
import { z } from 'zod';

/** Amplitude objects a sync can write, with Census's behaviours: update-or-create, or send-once for events. */
export const SYNC_OBJECTS = ['users', 'devices', 'groups', 'events'] as const;
export type SyncObject = (typeof SYNC_OBJECTS)[number];

/** Property operations Amplitude applies on identifies (server order: $unset, $set, $setOnce, $add, ...). */
export const PROPERTY_OPERATIONS = [
  '$set',
  '$setOnce',
  '$add',
  '$append',
  '$prepend',
  '$preInsert',
  '$postInsert',
  '$remove',
  '$unset',
] as const;
export type PropertyOperation = (typeof PROPERTY_OPERATIONS)[number];

/** Top-level Amplitude event / identify fields a column may be mapped to. */
export const SPECIAL_FIELDS = [
  'user_id',
  'device_id',
  'event_type',
  'time',
  'session_id',
  'event_id',
  'app_version',
  'platform',
  'os_name',
  'os_version',
  'device_brand',
  'device_manufacturer',
  'device_model',
  'carrier',
  'country',
  'region',
  'city',
  'dma',
  'language',
  'ip',
  'location_lat',
  'location_lng',
  'price',
  'quantity',
  'revenue',
  'productId',
  'revenueType',
  'currency',
  'idfa',
  'idfv',
  'adid',
  'android_id',
  'user_agent',
  'paying',
  'start_version',
  'plan',
  'partner_id',
] as const;
export type SpecialField = (typeof SPECIAL_FIELDS)[number];

const identifier = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, "-" and "_", starting with a letter or digit');

/**
 * Where a mapped value goes: a special field (`user_id`, `time`, ...), a property
 * (`user_properties.NAME`, `event_properties.NAME`, `group_properties.NAME`) or a group link (`groups.TYPE`).
 */
export const mappingTarget = z.string().refine(
  (t) => {
    if ((SPECIAL_FIELDS as readonly string[]).includes(t)) return true;
    const dot = t.indexOf('.');
    if (dot < 0) return false;
    const head = t.slice(0, dot);
    return ['user_properties', 'event_properties', 'group_properties', 'groups'].includes(head) && t.length > dot + 1;
  },
  {
    message: `expected a special field (${SPECIAL_FIELDS.slice(0, 6).join(', ')}, ...) or user_properties.NAME, event_properties.NAME, group_properties.NAME, groups.TYPE`,
  },
);

const jsonValue: z.ZodType<unknown> = z.lazy(() =>
  z.union([z.string(), z.number(), z.boolean(), z.null(), z.array(jsonValue), z.record(z.string(), jsonValue)]),
);

/** One mapping: a model column (`from`) or a fixed value (`constant`) to a target, with an optional operation. */
export const mappingSchema = z
  .strictObject({
    from: z.string().min(1).optional(),
    constant: jsonValue.optional(),
    to: mappingTarget,
    op: z.enum(PROPERTY_OPERATIONS).optional(),
  })
  .refine((m) => (m.from === undefined) !== (m.constant === undefined), {
    message: 'give exactly one of "from" (a model column) or "constant" (a fixed value)',
  })
  .refine((m) => m.op === undefined || /^(user_properties|group_properties)\./.test(m.to), {
    message: 'an "op" applies only to user_properties.* or group_properties.* targets',
    path: ['op'],
  });
export type Mapping = z.infer<typeof mappingSchema>;

/** A secret is referenced, never written in the file: an environment variable or a file holding it. */
export const secretRefSchema = z.union(
  [
    z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name') }),
    z.strictObject({ file: z.string().min(1) }),
  ],
  { error: 'expected a reference { env: VARIABLE } or { file: PATH }, never the secret itself' },
);
export type SecretRef = z.infer<typeof secretRefSchema>;

const STATE_DATASET_EXPECTED =
  'expected a dataset name (letters, digits and "_"), or false to diff in the worker (read-only mode)';

export const sourceSchema = z.strictObject({
  type: z.literal('bigquery').default('bigquery'),
  project: z.string().min(1),
  location: z.string().min(1).optional(),
  /** Service-account key file; Application Default Credentials when absent. */
  keyFile: z.string().min(1).optional(),
  /** Custom API root, e.g. the local emulator `http://127.0.0.1:9050`; no credentials are used then. */
  apiEndpoint: z.url().optional(),
  /** Queries that would bill more bytes than this fail before running (BigQuery's maximumBytesBilled). */
  maximumBytesBilled: z.union([z.number().int().positive(), z.string().regex(/^\d+$/)]).optional(),
  /**
   * The dataset (in `project`) where the diff runs: each run copies the model there with row fingerprints, and
   * only rows that differ from the snapshot of what was delivered leave BigQuery. Default `ampsync_state`, created
   * on the first run when missing (read-only against a loopback `apiEndpoint`, see stateDatasetOf); `false`
   * (read-only mode) diffs in the worker, which reads every row each run.
   */
  stateDataset: z
    .union([z.string().regex(/^[A-Za-z0-9_]{1,1024}$/, STATE_DATASET_EXPECTED), z.literal(false)], {
      error: STATE_DATASET_EXPECTED,
    })
    .optional(),
});
export type SourceConfig = z.infer<typeof sourceSchema>;

export const modelSchema = z.union(
  [
    z.strictObject({ sql: z.string().min(1) }),
    z.strictObject({
      table: z
        .string()
        .regex(/^([A-Za-z0-9_-]+\.)?[A-Za-z0-9_]+\.[A-Za-z0-9_$-]+$/, 'DATASET.TABLE or PROJECT.DATASET.TABLE'),
    }),
  ],
  { error: 'expected { sql: "SELECT ..." } or { table: DATASET.TABLE }' },
);
export type ModelConfig = z.infer<typeof modelSchema>;

export const destinationSchema = z
  .strictObject({
    apiKey: secretRefSchema,
    region: z.enum(['us', 'eu']).default('us'),
    /** Overrides the region's host, e.g. a proxy or the local emulator `http://127.0.0.1:9700`. */
    baseUrl: z.url().optional(),
  })
  .strict();
export type DestinationConfig = z.infer<typeof destinationSchema>;

export const scheduleSchema = z
  .strictObject({
    cron: z.string().min(1).optional(),
    /** An interval such as `15m`, `1h`, `1d`. */
    every: z
      .string()
      .regex(/^\d+(s|m|h|d)$/, 'a number followed by s, m, h or d, e.g. "15m"')
      .optional(),
    timezone: z.string().min(1).default('UTC'),
    /** SKIP (default): a run never starts while the previous one is still going. */
    overlap: z.enum(['skip', 'buffer_one', 'allow_all', 'cancel_other', 'terminate_other']).default('skip'),
    catchupWindow: z
      .string()
      .regex(/^\d+(s|m|h|d)$/)
      .default('1h'),
    pauseOnFailure: z.boolean().default(false),
    paused: z.boolean().default(false),
  })
  .refine((s) => (s.cron === undefined) !== (s.every === undefined), {
    message: 'give exactly one of "cron" or "every"',
  });
export type ScheduleConfig = z.infer<typeof scheduleSchema>;

export const optionsSchema = z.strictObject({
  /** Events: Batch API (default, 20 MB) or HTTP V2. Users/devices: $identify events on Batch (default) or /identify. */
  api: z.enum(['batch', 'httpv2', 'identify']).optional(),
  /** A NULL value: leave the property alone (skip) or $unset it. */
  nullPolicy: z.enum(['skip', 'unset']).default('skip'),
  /** Strings over Amplitude's 1024 characters: reject the row, or truncate. */
  longStrings: z.enum(['reject', 'truncate']).default('reject'),
  minIdLength: z.number().int().min(1).max(1024).default(5),
  /** Send activities running at once (each sends its chunks one after another). */
  concurrency: z.number().int().min(1).max(64).default(4),
  /**
   * Chunks one send activity sends and commits in turn: fewer activities load the Temporal cluster less and keep
   * the history shorter, more give finer progress and pause. A run with fewer than `concurrency` × this many chunks
   * spreads them so that `concurrency` activities still run at once.
   */
  chunksPerActivity: z.number().int().min(1).max(100).default(5),
  /** Rows per request; capped by the API's own limit. */
  batchSize: z.number().int().min(1).max(2000).default(1000),
  /**
   * Rows per chunk: the unit of durable progress. Fewer when the run's payloads are large: a chunk holds at most
   * 4 MiB of them (CHUNK_BUDGET_BYTES in src/state/describe.ts), so the send stage's memory does not grow with them.
   */
  chunkSize: z.number().int().min(100).max(200_000).default(10_000),
  /** Users/devices: also send this event with each changed profile so charts see the new properties at once. */
  syntheticEvent: z.string().min(1).optional(),
  /** Events: allow `reset` to forget delivered insert_ids (Amplitude dedups only 7 days). */
  allowEventReplay: z.boolean().default(false),
});
export type SyncOptions = z.infer<typeof optionsSchema>;

export const syncSchema = z
  .strictObject({
    id: identifier,
    description: z.string().optional(),
    object: z.enum(SYNC_OBJECTS),
    source: sourceSchema,
    model: modelSchema,
    /** The model column that identifies a row: user_id, device_id, group value or insert_id. */
    key: z.string().min(1),
    /** Groups: the group type every row's key is a value of (e.g. "account"). */
    groupType: z.string().min(1).optional(),
    mappings: z.array(mappingSchema).min(1),
    destination: destinationSchema,
    schedule: scheduleSchema.optional(),
    options: optionsSchema.default(() => optionsSchema.parse({})),
  })
  .superRefine((sync, ctx) => {
    const targets = sync.mappings.map((m) => m.to);
    const has = (t: string): boolean => targets.includes(t);
    const need = (cond: boolean, message: string, path: (string | number)[] = ['mappings']): void => {
      if (!cond) ctx.addIssue({ code: 'custom', message, path });
    };
    targets.forEach((t, i) => {
      if (targets.indexOf(t) !== i) need(false, `"${t}" is mapped twice`, ['mappings', i, 'to']);
    });
    switch (sync.object) {
      case 'users':
        need(has('user_id'), 'a users sync maps a column to "user_id"');
        break;
      case 'devices':
        need(has('device_id'), 'a devices sync maps a column to "device_id"');
        break;
      case 'groups':
        need(sync.groupType !== undefined, 'a groups sync names its "groupType" (e.g. "account")', ['groupType']);
        need(
          targets.every((t) => t.startsWith('group_properties.')),
          'a groups sync maps columns only to group_properties.NAME (the key is the group value)',
        );
        break;
      case 'events':
        need(has('user_id') || has('device_id'), 'an events sync maps a column to "user_id" or "device_id"');
        need(has('event_type'), 'an events sync maps "event_type" (a column, or a constant)');
        break;
    }
    if (sync.object !== 'groups') {
      targets.forEach((t, i) => {
        if (t.startsWith('group_properties.'))
          need(false, 'group_properties.* belongs to a groups sync', ['mappings', i, 'to']);
      });
    }
    if (sync.object !== 'events') {
      targets.forEach((t, i) => {
        if (t.startsWith('event_properties.'))
          need(false, 'event_properties.* belongs to an events sync', ['mappings', i, 'to']);
      });
    }
    const api = sync.options.api;
    if (api === 'identify')
      need(sync.object === 'users' || sync.object === 'devices', '"identify" suits users or devices', [
        'options',
        'api',
      ]);
    if (api === 'httpv2') need(sync.object === 'events', '"httpv2" suits events', ['options', 'api']);
    if (sync.options.syntheticEvent !== undefined)
      need(sync.object === 'users' || sync.object === 'devices', 'a synthetic event suits users or devices', [
        'options',
        'syntheticEvent',
      ]);
  });
export type SyncConfig = z.infer<typeof syncSchema>;
/** What a user writes (defaults not yet applied). */
export type SyncConfigInput = z.input<typeof syncSchema>;

export const syncsFileSchema = z
  .strictObject({
    version: z.literal(1).default(1),
    /** Defaults merged into every sync's `source` and `destination`. */
    defaults: z
      .strictObject({
        source: sourceSchema.partial().optional(),
        destination: destinationSchema.partial().optional(),
      })
      .optional(),
    syncs: z.array(z.unknown()).min(1),
  })
  .strict();
