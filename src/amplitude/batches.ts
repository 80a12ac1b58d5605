/**
 * Packing staged rows into requests within an API's limits, by count and by serialized bytes. Payloads are
 * already JSON: request bodies are built by concatenating them, never by re-encoding rows.
 */
import type { PayloadBytes, StagedRow } from '../sync/types';
import type { AmplitudeApi } from './endpoints';
import { AMPLITUDE_API_SPECS } from './endpoints';

/** Bytes reserved for the request around the rows when the caller does not know them exactly. */
export const DEFAULT_ENVELOPE_BYTES = 512;

/** What one request may hold. */
export interface PackLimits {
  maxItems: number;
  /** Limit on the whole uncompressed body, envelope included. */
  maxBytes: number;
  /** Bytes of the body around the rows (`{"api_key":...,"events":` ... `}` or `api_key=...&identification=`). */
  envelopeBytes: number;
  /** `form` bodies carry the rows URL-encoded, which is what their size counts. */
  body: 'json' | 'form';
}

/** Limits of an API, with the rows per request capped at `batchSize` when given. */
export function packLimitsFor(
  api: AmplitudeApi,
  options: { batchSize?: number; envelopeBytes?: number } = {},
): PackLimits {
  const spec = AMPLITUDE_API_SPECS[api];
  return {
    maxItems: Math.min(spec.maxItemsPerRequest, options.batchSize ?? spec.maxItemsPerRequest),
    maxBytes: spec.maxBytesPerRequest,
    envelopeBytes: options.envelopeBytes ?? DEFAULT_ENVELOPE_BYTES,
    body: spec.body,
  };
}

/** Bytes one payload takes in a body of the given kind (without its separator). */
export function payloadWireBytes(payload: string, body: PackLimits['body']): number {
  return body === 'json' ? Buffer.byteLength(payload, 'utf8') : encodeURIComponent(payload).length;
}

/** Bytes a row's payload takes in a body of the given kind (its bytes' length when read as bytes, for JSON). */
function rowWireBytes(row: StagedRow, body: PackLimits['body']): number {
  const bytes = body === 'json' ? row.bytes : undefined;
  return bytes !== undefined ? bytes.end - bytes.start : payloadWireBytes(row.payload, body);
}

/** Bytes of the `[`, `,` and `]` around and between items. */
function punctuationBytes(body: PackLimits['body']): number {
  return body === 'json' ? 1 : 3; // `,` or `%2C`; `[`/`]` are the same size again
}

/** The rows' JSON array as it goes into the body: `[p1,p2]`, or URL-encoded for form bodies. */
export function rowsArray(rows: readonly StagedRow[], body: PackLimits['body']): string {
  let json = '[';
  for (let i = 0; i < rows.length; i++) {
    if (i > 0) json += ',';
    json += rows[i]!.payload;
  }
  json += ']';
  return body === 'json' ? json : encodeURIComponent(json);
}

/**
 * The request body `prefix + [p1,p2,...] + suffix` as the pieces it is made of, in order, never passing a body
 * through a JS string. When every row's payload was read as bytes (JSON bodies), the pieces are views of those
 * bytes where they were read (consecutive payloads of one source, commas included, as one view) between the
 * envelope's: no payload is copied. Otherwise the body is written into one buffer (URL-encoded rows for form
 * bodies).
 */
export function requestPieces(
  prefix: string,
  rows: readonly StagedRow[],
  body: PackLimits['body'],
  suffix: string,
): Buffer[] {
  if (body === 'json' && rows.every((r) => r.bytes !== undefined)) {
    return bytePieces(
      prefix,
      rows.map((r) => r.bytes as PayloadBytes),
      suffix,
    );
  }
  const pieces = body === 'json' ? rows.map((r) => r.payload) : rows.map((r) => encodeURIComponent(r.payload));
  const [open, sep, close] = body === 'json' ? ['[', ',', ']'] : ['%5B', '%2C', '%5D'];
  let size = Buffer.byteLength(prefix) + Buffer.byteLength(suffix) + 2 * open.length;
  for (const piece of pieces) size += Buffer.byteLength(piece) + sep.length;
  const buf = Buffer.allocUnsafe(size);
  let at = buf.write(prefix, 0);
  at += buf.write(open, at);
  for (let i = 0; i < pieces.length; i++) {
    if (i > 0) at += buf.write(sep, at);
    at += buf.write(pieces[i]!, at);
  }
  at += buf.write(close, at);
  at += buf.write(suffix, at);
  return [buf.subarray(0, at)];
}

/** The request body as one buffer (see requestPieces). */
export function requestBody(
  prefix: string,
  rows: readonly StagedRow[],
  body: PackLimits['body'],
  suffix: string,
): Buffer {
  const pieces = requestPieces(prefix, rows, body, suffix);
  return pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces);
}

const COMMA = Buffer.from(',');

function bytePieces(prefix: string, spans: readonly PayloadBytes[], suffix: string): Buffer[] {
  const pieces: Buffer[] = [Buffer.from(`${prefix}[`)];
  for (let i = 0; i < spans.length;) {
    // the payloads that follow this one in its source, each after its comma, go in the same view
    let j = i;
    while (j + 1 < spans.length && follows(spans[j + 1]!, spans[j]!)) j++;
    if (i > 0) pieces.push(COMMA);
    const { source, start } = spans[i]!;
    pieces.push(Buffer.from(source.buffer, source.byteOffset + start, spans[j]!.end - start));
    i = j + 1;
  }
  pieces.push(Buffer.from(`]${suffix}`));
  return pieces;
}

/** Whether `next` is the payload right after `prev` in the same source (one comma between them). */
function follows(next: PayloadBytes, prev: PayloadBytes): boolean {
  return next.source === prev.source && next.start === prev.end + 1;
}

/**
 * Splits rows, in order, into requests of at most `maxItems` rows and `maxBytes` bytes. A row too large to fit
 * even alone travels alone (Amplitude's 413 then rejects it).
 */
export function packBatches(rows: readonly StagedRow[], limits: PackLimits): StagedRow[][] {
  const sep = punctuationBytes(limits.body);
  const budget = limits.maxBytes - limits.envelopeBytes - 2 * sep;
  const batches: StagedRow[][] = [];
  let current: StagedRow[] = [];
  let bytes = 0;
  for (const row of rows) {
    const size = rowWireBytes(row, limits.body);
    if (current.length > 0 && (current.length >= limits.maxItems || bytes + sep + size > budget)) {
      batches.push(current);
      current = [];
    }
    bytes = current.length === 0 ? size : bytes + sep + size;
    current.push(row);
  }
  if (current.length > 0) batches.push(current);
  return batches;
}
