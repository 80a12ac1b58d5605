/**
 * The real collaborators of the activities: BigQuery, Amplitude and the state store, created once per worker
 * and cached per source / destination. Secrets are resolved here, on the worker, never passed through Temporal.
 */
import * as path from 'node:path';
import { activityContext } from '../temporal/activity-context';
import type { ActivityDeps, BatchSender } from '../../activities/sync-activities';
import { packBatches, packLimitsFor } from '../amplitude/batches';
import { createAmplitudeSender, type AmplitudeSender } from '../amplitude/client';
import { apiForSync } from '../amplitude/endpoints';
import { compileMapper } from '../amplitude/mapping';
import { resolveSecret } from '../config/load';
import type { SourceConfig, SyncConfig } from '../config/schema';
import { BigQuerySource } from '../sources/bigquery/source';
import { openStateStore } from '../state';
import type { StateStore } from '../state/types';
import { checkReadAhead } from '../sources/read-ahead';
import type { Source } from '../sync/types';

export interface ActivityDepsOptions {
  /** A state store, or its URL (`sqlite:PATH`, `postgres://...`); default AMPSYNC_STATE or `.ampsync/data/state.db`. */
  state?: StateStore | string;
  /** Rows per BigQuery page. */
  pageSize?: number;
  /** Pages of a model read at once at most while the worker waits on the source (default 4). */
  readAhead?: number;
  /** Per-request timeout towards Amplitude. */
  requestTimeoutMs?: number;
  /** Longest wait for throttled rows inside one send; longer throttles defer the rows to the next run. */
  maxThrottleWaitMs?: number;
  /** Another warehouse in place of BigQuery (anything that implements Source). */
  sourceFor?: (source: SourceConfig) => Source;
}

export interface OwnedActivityDeps extends ActivityDeps {
  close(): Promise<void>;
}

/** The default state location: the embedded SQLite file in the data folder. */
export function defaultStateUrl(): string {
  return (
    process.env.AMPSYNC_STATE ?? `sqlite:${path.resolve(process.env.AMPSYNC_HOME ?? '.ampsync', 'data', 'state.db')}`
  );
}

/** Wraps a store so that the first call of any method waits for its schema migration. */
function migratedOnce(store: StateStore): StateStore {
  let ready: Promise<void> | undefined;
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || prop === 'migrate' || prop === 'close') {
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      }
      return async (...args: unknown[]) => {
        ready ??= target.migrate().catch((err: unknown) => {
          ready = undefined;
          throw err;
        });
        await ready;
        return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      };
    },
  });
}

/** Builds the activities' collaborators for this worker process. */
export function createActivityDeps(options: ActivityDepsOptions = {}): OwnedActivityDeps {
  if (options.readAhead !== undefined) checkReadAhead(options.readAhead);
  const ownsState = typeof options.state !== 'object';
  const rawState =
    typeof options.state === 'object' ? options.state : openStateStore(options.state ?? defaultStateUrl());
  const state = migratedOnce(rawState);
  const sources = new Map<string, Source>();
  const senders = new Map<string, AmplitudeSender>();

  const senderFor = (sync: SyncConfig): BatchSender => {
    const api = apiForSync(sync);
    const apiKey = resolveSecret(sync.destination.apiKey, `Amplitude API key of sync "${sync.id}"`);
    const cacheKey = JSON.stringify([
      api,
      sync.destination.region,
      sync.destination.baseUrl ?? '',
      sync.options.minIdLength,
      apiKey,
    ]);
    let sender = senders.get(cacheKey);
    if (sender === undefined) {
      sender = createAmplitudeSender({
        api,
        region: sync.destination.region,
        ...(sync.destination.baseUrl !== undefined ? { baseUrl: sync.destination.baseUrl } : {}),
        apiKey,
        minIdLength: sync.options.minIdLength,
        ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
        ...(options.maxThrottleWaitMs !== undefined ? { maxThrottleWaitMs: options.maxThrottleWaitMs } : {}),
      });
      senders.set(cacheKey, sender);
    }
    return sender;
  };

  return {
    state,
    ...(options.pageSize !== undefined ? { pageSize: options.pageSize } : {}),
    ...(options.readAhead !== undefined ? { readAhead: options.readAhead } : {}),
    sourceFor(source: SourceConfig): Source {
      if (options.sourceFor) return options.sourceFor(source);
      const cacheKey = JSON.stringify(source);
      const cached = sources.get(cacheKey);
      if (cached !== undefined) return cached;
      // a long query job keeps the activity alive: each poll of the job heartbeats
      const created = new BigQuerySource(source, {
        onJobWait: (wait) => activityContext()?.heartbeat({ waitingForJob: wait.jobId }),
      });
      sources.set(cacheKey, created);
      return created;
    },
    mapperFor: (sync, schema) => compileMapper(sync, schema !== undefined ? { schema } : {}),
    senderFor,
    packBatches: (sync, rows) =>
      packBatches(rows, packLimitsFor(apiForSync(sync), { batchSize: sync.options.batchSize })),
    async close() {
      await Promise.allSettled([...senders.values()].map((s) => s.close()));
      if (ownsState) await rawState.close();
    },
  };
}
