/** `ampsync check` and `ampsync preview`: look at a sync end to end without sending anything. */
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { compileMapper, modelColumns } from '../amplitude/mapping';
import { apiForSync, endpointUrl } from '../amplitude/endpoints';
import { loadFingerprintHash } from '../diff/canonical';
import { resolveSecret } from '../config/load';
import type { SyncConfig } from '../config/schema';
import { BigQuerySource } from '../sources/bigquery/source';
import { openStateStore } from '../state';
import { diffModeOf, isExhausted, pageRowsAt } from '../sync/types';
import { checkDiffKey } from '../sync/warehouse-diff';
import { formatBytes } from './format';

const PROBE_TIMEOUT_MS = 10_000;

/** What the Amplitude endpoint said to a request carrying the key and no data. */
export interface ProbeResult {
  ok: boolean;
  url: string;
  detail: string;
}

/**
 * Reaches the sync's Amplitude endpoint with its key and an empty request: nothing is ingested, but an invalid
 * key or a firewall block answers differently from a reachable endpoint that accepts the key.
 */
export async function probeAmplitude(sync: SyncConfig, apiKey: string): Promise<ProbeResult> {
  const api = apiForSync(sync);
  const url = endpointUrl(api, sync.destination.region, sync.destination.baseUrl);
  const form = api === 'identify' || api === 'groupidentify';
  const body = form
    ? `api_key=${encodeURIComponent(apiKey)}&identification=${encodeURIComponent('[]')}`
    : JSON.stringify({ api_key: apiKey, events: [] });
  try {
    const res = await request(url, {
      method: 'POST',
      headers: { 'content-type': form ? 'application/x-www-form-urlencoded' : 'application/json' },
      body,
      headersTimeout: PROBE_TIMEOUT_MS,
      bodyTimeout: PROBE_TIMEOUT_MS,
    });
    const text = await res.body.text();
    if (/invalid api key/i.test(text)) return { ok: false, url, detail: 'Amplitude says the API key is invalid' };
    if (res.statusCode === 401 || res.statusCode === 403) {
      return {
        ok: false,
        url,
        detail: `Amplitude answered ${res.statusCode} (forbidden: a firewall or a disabled key)`,
      };
    }
    if (res.statusCode >= 500)
      return { ok: false, url, detail: `Amplitude answered ${res.statusCode}: try again later` };
    return { ok: true, url, detail: `reachable, key accepted (HTTP ${res.statusCode} to an empty request)` };
  } catch (err) {
    return { ok: false, url, detail: `cannot reach ${url}: ${(err as Error).message}` };
  }
}

/** Validates a sync against BigQuery and Amplitude; prints one line per check; true when all passed. */
export async function checkSync(sync: SyncConfig, print: (line: string) => void): Promise<boolean> {
  let ok = true;
  const step = async (label: string, body: () => Promise<string>): Promise<void> => {
    try {
      print(`✔ ${label}: ${await body()}`);
    } catch (err) {
      ok = false;
      print(`✖ ${label}: ${(err as Error).message}`);
    }
  };
  print(`✔ syncs file: sync "${sync.id}" (${sync.object}, key ${sync.key}, ${sync.mappings.length} mappings) is valid`);
  let apiKey: string | undefined;
  await step('Amplitude API key', () => {
    apiKey = resolveSecret(sync.destination.apiKey, `Amplitude API key of sync "${sync.id}"`);
    const ref = sync.destination.apiKey;
    return Promise.resolve('env' in ref ? `read from $${ref.env}` : `read from ${ref.file}`);
  });
  const source = new BigQuerySource(sync.source);
  await step('BigQuery model', async () => {
    const read = modelColumns(sync);
    const dry = await source.dryRun(sync.model, { columns: read });
    compileMapper(sync, { schema: dry.schema });
    if (source.warehouseDiff !== undefined) checkDiffKey(`sync "${sync.id}"`, sync.key, dry.schema);
    return `dry run OK, a run reads ${read.length} of its ${dry.schema.length} columns (the key and the mapped ones), ${formatBytes(dry.bytesProcessed)}; columns ${dry.schema.map((f) => f.name).join(', ')}; every mapped column exists`;
  });
  if (source.warehouseDiff !== undefined) {
    await step('BigQuery state dataset', () => source.describeStateDataset());
  } else {
    const why =
      sync.source.stateDataset === false
        ? 'source.stateDataset: false'
        : 'a sync against a local emulator names no stateDataset';
    print(`✔ BigQuery state dataset: none (${why}): the worker diffs, reading every row each run`);
  }
  if (apiKey !== undefined) {
    const key = apiKey;
    await step('Amplitude endpoint', async () => {
      const probe = await probeAmplitude(sync, key);
      if (!probe.ok) throw new Error(`${probe.url}: ${probe.detail}`);
      return `${probe.url}: ${probe.detail}`;
    });
  }
  return ok;
}

export interface PreviewOptions {
  state: string;
  payloads: number;
  print: (line: string) => void;
}

/** Extracts and diffs the model as a run would, prints the counts and the first payloads, and discards it all. */
export async function previewSync(sync: SyncConfig, options: PreviewOptions): Promise<void> {
  const store = openStateStore(options.state);
  const runId = `preview-${randomUUID()}`;
  try {
    await store.migrate();
    const source = new BigQuerySource(sync.source);
    const opened = await source.open(sync.model);
    await loadFingerprintHash();
    const mapper = compileMapper(sync, { schema: opened.schema });
    await store.beginRun({ syncId: sync.id, runId, mode: diffModeOf(sync.object), chunkSize: sync.options.chunkSize });
    let position = opened.position;
    while (!isExhausted(position)) {
      const page = await source.readPage(position, { pageSize: pageRowsAt(position, 10_000) });
      const rows = [];
      const rejected = [];
      for (const row of page.rows) {
        const m = mapper.map(row);
        if (m.ok) rows.push({ key: m.key, hash: m.hash, payload: m.payload });
        else rejected.push({ key: m.key, reason: m.reason, stage: m.stage });
      }
      await store.stagePage({ syncId: sync.id, runId, rows, rejected, cursor: page.next });
      position = page.next;
    }
    const finished = await store.finishExtract(sync.id, runId);
    const c = finished.counts;
    options.print(
      `${sync.id}: ${c.extracted} rows in the model → ${c.new + c.changed} to send (new ${c.new}, changed ${c.changed}), ` +
        `${c.unchanged} unchanged, ${c.invalid} invalid, ${c.gone} gone; ${finished.chunks} chunk(s)`,
    );
    for (const r of finished.sampleRejections) options.print(`  would reject ${r.key ?? '(no key)'}: ${r.reason}`);
    const first = finished.chunks > 0 ? await store.readChunk(sync.id, runId, 0) : [];
    if (first.length === 0) {
      options.print('nothing to send: Amplitude already has every row of the model');
      return;
    }
    const api = apiForSync(sync);
    options.print(
      `first payloads, as sent to ${endpointUrl(api, sync.destination.region, sync.destination.baseUrl)} (nothing was sent):`,
    );
    for (const row of first.slice(0, options.payloads)) options.print(`  ${row.payload}`);
  } finally {
    await store.discardRun(sync.id, runId).catch(() => undefined);
    await store.close();
  }
}
