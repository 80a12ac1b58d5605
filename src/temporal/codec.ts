/**
 * Optional end-to-end encryption of Temporal payloads (AES-256-GCM): workflow inputs, results, memos, queries,
 * signals and heartbeat details reach the Temporal server, its history and its UI as ciphertext (search attributes
 * stay readable: the server indexes them). Each payload names
 * the key that sealed it, so keys rotate without breaking running histories: add the new key, make it the active
 * one, keep the old ones for decoding.
 *
 *   AMPSYNC_CODEC_KEY=$(openssl rand -base64 32) AMPSYNC_CODEC_KEY_ID=2026-11 npx ampsync worker
 *   AMPSYNC_CODEC_KEY_FILE=/run/secrets/ampsync-codec-keys npx ampsync worker   # lines of "<key id> <base64 key>"
 *
 * The client and the worker pick the codec up from these variables (`codecFromEnv`), and with it a failure
 * converter that encodes failure messages and stack traces (ENCODED_FAILURES_PATH); the Temporal UI reads the
 * payloads through `ampsync codec-server`.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

/**
 * Path of the failure converter that goes with the codec (compiled or TypeScript, whichever is running): failure
 * messages and stack traces are encrypted too (see encoded-failures.ts).
 */
export const ENCODED_FAILURES_PATH = require.resolve('./encoded-failures');

/** `metadata.encoding` of an encrypted payload. */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
/** Metadata key naming the key a payload was sealed with. */
export const KEY_ID_METADATA_KEY = 'encryption-key-id';
/** Metadata key naming the cipher. */
export const CIPHER_METADATA_KEY = 'encryption-cipher';
export const CIPHER = 'AES-256-GCM';
/** AES-256 keys are 32 bytes. */
export const KEY_BYTES = 32;
/** GCM nonce, fresh for every payload. */
export const IV_BYTES = 12;
/** GCM authentication tag appended to the ciphertext. */
export const TAG_BYTES = 16;

/** Environment variables the codec is configured from. */
export const CODEC_ENV = {
  key: 'AMPSYNC_CODEC_KEY',
  keyId: 'AMPSYNC_CODEC_KEY_ID',
  keyFile: 'AMPSYNC_CODEC_KEY_FILE',
} as const;

/** The codec's keys are missing, malformed or ambiguous; the message names the variable or file and the line. */
export class CodecKeyError extends Error {
  override readonly name = 'CodecKeyError';
}

/** A payload cannot be decrypted (unknown key id, wrong key, tampered data); the message names the key id. */
export class CodecDecodeError extends Error {
  override readonly name = 'CodecDecodeError';
  readonly type = 'CodecDecodeError';
  readonly retryable = false;
}

/** One AES-256 key and the id payloads name it by. */
export interface CodecKey {
  id: string;
  key: Uint8Array;
}

export interface AesGcmCodecOptions {
  /** Every key that may have sealed a payload (old ones stay for decoding). */
  keys: CodecKey[];
  /** Id of the key new payloads are sealed with (default: the first key). */
  activeKeyId?: string;
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
const KEY_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** Encrypts payloads with the active key and decrypts them with the key their metadata names. */
export class AesGcmPayloadCodec implements PayloadCodec {
  readonly activeKeyId: string;
  private readonly keys: ReadonlyMap<string, Buffer>;

  constructor(options: AesGcmCodecOptions) {
    if (options.keys.length === 0) throw new CodecKeyError('the payload codec needs at least one key');
    const keys = new Map<string, Buffer>();
    for (const { id, key } of options.keys) {
      if (!KEY_ID.test(id))
        throw new CodecKeyError(`codec key id "${id}" must be 1-64 letters, digits, ".", "_", ":" or "-"`);
      if (key.length !== KEY_BYTES)
        throw new CodecKeyError(`codec key "${id}" has ${key.length} bytes; AES-256 needs ${KEY_BYTES}`);
      if (keys.has(id)) throw new CodecKeyError(`codec key id "${id}" is given twice`);
      keys.set(id, Buffer.from(key));
    }
    const active = options.activeKeyId ?? options.keys[0]!.id;
    if (!keys.has(active)) {
      throw new CodecKeyError(`active codec key "${active}" is not among the keys (${[...keys.keys()].join(', ')})`);
    }
    this.keys = keys;
    this.activeKeyId = active;
  }

  /** Ids of the keys this codec can decode with. */
  get keyIds(): string[] {
    return [...this.keys.keys()];
  }

  encode(payloads: Payload[]): Promise<Payload[]> {
    const key = this.keys.get(this.activeKeyId)!;
    return Promise.resolve(
      payloads.map((payload) => {
        const plain = temporal.api.common.v1.Payload.encode(payload).finish();
        const iv = randomBytes(IV_BYTES);
        const cipher = createCipheriv('aes-256-gcm', key, iv);
        const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
        return {
          metadata: {
            encoding: utf8.encode(ENCRYPTED_ENCODING),
            [KEY_ID_METADATA_KEY]: utf8.encode(this.activeKeyId),
            [CIPHER_METADATA_KEY]: utf8.encode(CIPHER),
          },
          data: sealed,
        };
      }),
    );
  }

  decode(payloads: Payload[]): Promise<Payload[]> {
    try {
      return Promise.resolve(payloads.map((payload) => this.decodeOne(payload)));
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new CodecDecodeError(String(err)));
    }
  }

  private decodeOne(payload: Payload): Payload {
    const encoding = payload.metadata?.encoding;
    if (encoding === undefined || encoding === null || fromUtf8.decode(encoding) !== ENCRYPTED_ENCODING) return payload;
    const idBytes = payload.metadata?.[KEY_ID_METADATA_KEY];
    if (idBytes === undefined || idBytes === null) {
      throw new CodecDecodeError(
        `an encrypted payload has no "${KEY_ID_METADATA_KEY}" metadata: it was not sealed by ampsync`,
      );
    }
    const id = fromUtf8.decode(idBytes);
    const key = this.keys.get(id);
    if (key === undefined) {
      throw new CodecDecodeError(
        `payload sealed with codec key "${id}", which this process does not have (it has: ${this.keyIds.join(', ')}); ` +
          `add that key to ${CODEC_ENV.keyFile}`,
      );
    }
    const data = Buffer.from(payload.data ?? new Uint8Array());
    if (data.length < IV_BYTES + TAG_BYTES) {
      throw new CodecDecodeError(
        `payload sealed with codec key "${id}" is ${data.length} bytes: too short to be AES-GCM`,
      );
    }
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
    } catch (err) {
      throw new CodecDecodeError(
        `payload sealed with codec key "${id}" fails authentication: the key with that id differs, or the data was altered`,
        { cause: err },
      );
    }
    return temporal.api.common.v1.Payload.decode(plain);
  }
}

/** Reads a 32-byte key written as base64 (44 characters) or hex (64 characters); `where` names it in errors. */
export function parseCodecKey(text: string, where: string): Uint8Array {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    const key = Buffer.from(trimmed, trimmed.includes('-') || trimmed.includes('_') ? 'base64url' : 'base64');
    if (key.length === KEY_BYTES) return key;
    throw new CodecKeyError(
      `${where} decodes to ${key.length} bytes; AES-256 needs ${KEY_BYTES} (openssl rand -base64 32)`,
    );
  }
  throw new CodecKeyError(`${where} is neither base64 nor hex (make one with: openssl rand -base64 32)`);
}

/** Parses a key file: one `<key id> <key>` (or `<key id>=<key>`) per line; `#` starts a comment. */
export function parseCodecKeyFile(text: string, file: string): CodecKey[] {
  const keys: CodecKey[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (line === '') return;
    const match = /^(\S+?)\s*[=\s]\s*(\S+)$/.exec(line);
    if (match === null) throw new CodecKeyError(`${file} line ${i + 1}: expected "<key id> <base64 key>"`);
    keys.push({ id: match[1]!, key: parseCodecKey(match[2]!, `${file} line ${i + 1} (key "${match[1]!}")`) });
  });
  if (keys.length === 0) throw new CodecKeyError(`${file} holds no codec key`);
  return keys;
}

/**
 * The codec the environment configures, or undefined when none is: `AMPSYNC_CODEC_KEY` with its
 * `AMPSYNC_CODEC_KEY_ID`, and/or `AMPSYNC_CODEC_KEY_FILE`. `AMPSYNC_CODEC_KEY_ID` picks the active key (default:
 * the key of `AMPSYNC_CODEC_KEY`, else the file's first line); the others decode only.
 */
export function codecFromEnv(env: NodeJS.ProcessEnv = process.env): AesGcmPayloadCodec | undefined {
  const keyText = env[CODEC_ENV.key]?.trim() ?? '';
  const keyId = env[CODEC_ENV.keyId]?.trim() ?? '';
  const keyFile = env[CODEC_ENV.keyFile]?.trim() ?? '';
  if (keyText === '' && keyFile === '') {
    if (keyId !== '')
      throw new CodecKeyError(`${CODEC_ENV.keyId} is set but neither ${CODEC_ENV.key} nor ${CODEC_ENV.keyFile} is`);
    return undefined;
  }
  const keys: CodecKey[] = [];
  if (keyText !== '') {
    if (keyId === '')
      throw new CodecKeyError(`${CODEC_ENV.key} is set without ${CODEC_ENV.keyId}: name the key (e.g. 2026-11)`);
    keys.push({ id: keyId, key: parseCodecKey(keyText, CODEC_ENV.key) });
  }
  if (keyFile !== '') {
    let text: string;
    try {
      text = fs.readFileSync(keyFile, 'utf8');
    } catch (err) {
      throw new CodecKeyError(
        `${CODEC_ENV.keyFile}: cannot read ${keyFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
    for (const k of parseCodecKeyFile(text, keyFile)) {
      if (keys.some((known) => known.id === k.id)) {
        throw new CodecKeyError(`codec key "${k.id}" is given by both ${CODEC_ENV.key} and ${keyFile}`);
      }
      keys.push(k);
    }
  }
  return new AesGcmPayloadCodec({ keys, ...(keyId !== '' ? { activeKeyId: keyId } : {}) });
}
