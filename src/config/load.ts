/** Reads and validates a syncs file; every error names the file, the path inside it and what was expected. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { syncSchema, syncsFileSchema, type SecretRef, type SyncConfig } from './schema';

/** The syncs file is missing, is not YAML, or does not match the schema. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    readonly file: string,
    readonly issues: string[] = [],
  ) {
    super(message);
  }
}

/** A referenced secret (env var or file) cannot be read. */
export class SecretError extends Error {
  override readonly name = 'SecretError';
}

export interface SyncsFile {
  file: string;
  syncs: SyncConfig[];
}

function formatPath(parts: readonly PropertyKey[]): string {
  let out = '';
  for (const p of parts) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || '(top level)';
}

function describeIssues(error: z.ZodError, prefix: readonly PropertyKey[]): string[] {
  return error.issues.map((issue) => `${formatPath([...prefix, ...issue.path])}: ${plain(issue.message)}`);
}

/** zod's wording for an absent field, said plainly. */
function plain(message: string): string {
  const missing = /^Invalid input: expected (\w+), received undefined$/.exec(message);
  return missing ? `required (expected ${missing[1]})` : message;
}

function fail(file: string, issues: string[]): never {
  throw new ConfigError(`${file} is invalid:\n  - ${issues.join('\n  - ')}`, file, issues);
}

function merge<T extends object>(defaults: Partial<T> | undefined, value: unknown): unknown {
  if (defaults === undefined || typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  return { ...defaults, ...value };
}

/** Parses a syncs file's text (YAML or JSON); `file` is used in messages. */
export function parseSyncsFile(text: string, file: string): SyncsFile {
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0)
    fail(
      file,
      doc.errors.map((e) => `YAML syntax: ${e.message}`),
    );
  const raw: unknown = doc.toJS();
  const top = syncsFileSchema.safeParse(raw);
  if (!top.success) fail(file, describeIssues(top.error, []));
  const issues: string[] = [];
  const syncs: SyncConfig[] = [];
  const seen = new Map<string, number>();
  top.data.syncs.forEach((entry, i) => {
    const withDefaults =
      typeof entry === 'object' && entry !== null && !Array.isArray(entry)
        ? {
            ...entry,
            source: merge(top.data.defaults?.source, (entry as Record<string, unknown>).source ?? {}),
            destination: merge(top.data.defaults?.destination, (entry as Record<string, unknown>).destination ?? {}),
          }
        : entry;
    const parsed = syncSchema.safeParse(withDefaults);
    if (!parsed.success) {
      const id = (entry as { id?: unknown } | null)?.id;
      issues.push(
        ...describeIssues(parsed.error, ['syncs', i]).map((m) => (typeof id === 'string' ? `${m} (sync "${id}")` : m)),
      );
      return;
    }
    const earlier = seen.get(parsed.data.id);
    if (earlier !== undefined)
      issues.push(`syncs[${i}].id: "${parsed.data.id}" is already the id of syncs[${earlier}]`);
    seen.set(parsed.data.id, i);
    syncs.push(parsed.data);
  });
  if (issues.length > 0) fail(file, issues);
  return { file, syncs };
}

/** Reads and validates a syncs file from disk. */
export function loadSyncsFile(file: string): SyncsFile {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(abs, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `cannot read syncs file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      file,
    );
  }
  return parseSyncsFile(text, file);
}

/** One sync of a syncs file by id; the error lists the ids that exist. */
export function findSync(file: SyncsFile, id: string): SyncConfig {
  const sync = file.syncs.find((s) => s.id === id);
  if (sync === undefined) {
    throw new ConfigError(
      `${file.file} has no sync "${id}" (it has: ${file.syncs.map((s) => s.id).join(', ')})`,
      file.file,
    );
  }
  return sync;
}

/** Resolves a secret reference on the worker; the error names the reference, never a value. */
export function resolveSecret(ref: SecretRef, what: string): string {
  if ('env' in ref) {
    const value = process.env[ref.env];
    if (value === undefined || value.trim() === '') {
      throw new SecretError(`${what}: environment variable ${ref.env} is not set on this worker`);
    }
    return value.trim();
  }
  try {
    const value = fs.readFileSync(ref.file, 'utf8').trim();
    if (value === '') throw new SecretError(`${what}: secret file ${ref.file} is empty`);
    return value;
  } catch (err) {
    if (err instanceof SecretError) throw err;
    throw new SecretError(
      `${what}: cannot read secret file ${ref.file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}
