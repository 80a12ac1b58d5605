/**
 * The AES-256-GCM payload codec (src/temporal/codec.ts): round trip, key rotation by key id, clear failures for
 * an unknown key id or altered data, and key configuration from the environment or a key file.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import {
  AesGcmPayloadCodec,
  CodecDecodeError,
  CodecKeyError,
  ENCRYPTED_ENCODING,
  IV_BYTES,
  KEY_ID_METADATA_KEY,
  TAG_BYTES,
  codecFromEnv,
  parseCodecKey,
} from '../../src/temporal/codec';

const keyA = Buffer.alloc(32, 0xa1);
const keyB = Buffer.alloc(32, 0xb2);
const text = (bytes: Uint8Array | null | undefined): string => Buffer.from(bytes ?? new Uint8Array()).toString('utf8');
const input = { sync: { id: 'users', model: { sql: 'SELECT email FROM crm.people' } }, trigger: 'manual' };

function payloadOf(value: unknown): Payload {
  return defaultPayloadConverter.toPayload(value);
}

test('encode seals each payload with a fresh nonce and names its key; decode restores it exactly', async () => {
  const codec = new AesGcmPayloadCodec({ keys: [{ id: 'k-2026-11', key: keyA }] });
  const plain = [payloadOf(input), payloadOf(null), payloadOf('x'.repeat(10_000))];
  const sealed = await codec.encode(plain);
  expect(sealed).toHaveLength(3);
  for (const p of sealed) {
    expect(text(p.metadata?.encoding)).toBe(ENCRYPTED_ENCODING);
    expect(text(p.metadata?.[KEY_ID_METADATA_KEY])).toBe('k-2026-11');
    expect(text(p.metadata?.['encryption-cipher'])).toBe('AES-256-GCM');
    expect(text(p.data)).not.toContain('crm.people');
    expect(text(p.data)).not.toContain('json/plain');
  }
  const again = await codec.encode([plain[0]!]);
  expect(Buffer.from(again[0]!.data!).subarray(0, IV_BYTES)).not.toEqual(
    Buffer.from(sealed[0]!.data!).subarray(0, IV_BYTES),
  );
  const opened = await codec.decode(sealed);
  expect(opened.map((p) => defaultPayloadConverter.fromPayload(p))).toEqual([input, null, 'x'.repeat(10_000)]);
  expect(text(opened[0]!.metadata?.encoding)).toBe('json/plain');
});

test('payloads that are not encrypted pass through decode unchanged', async () => {
  const codec = new AesGcmPayloadCodec({ keys: [{ id: 'a', key: keyA }] });
  const plain = payloadOf({ a: 1 });
  expect(await codec.decode([plain])).toEqual([plain]);
});

test('rotation: payloads sealed with the old key still decode; new payloads use the active key', async () => {
  const old = new AesGcmPayloadCodec({ keys: [{ id: 'old', key: keyA }] });
  const rotated = new AesGcmPayloadCodec({
    keys: [
      { id: 'old', key: keyA },
      { id: 'new', key: keyB },
    ],
    activeKeyId: 'new',
  });
  const sealedOld = await old.encode([payloadOf(input)]);
  expect(defaultPayloadConverter.fromPayload((await rotated.decode(sealedOld))[0]!)).toEqual(input);
  const sealedNew = await rotated.encode([payloadOf(input)]);
  expect(text(sealedNew[0]!.metadata?.[KEY_ID_METADATA_KEY])).toBe('new');
});

test('an unknown key id fails clearly, naming the key id and the keys at hand', async () => {
  const sealed = await new AesGcmPayloadCodec({ keys: [{ id: 'retired-2025', key: keyA }] }).encode([payloadOf(input)]);
  const other = new AesGcmPayloadCodec({ keys: [{ id: 'current', key: keyB }] });
  const err: unknown = await other.decode(sealed).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(CodecDecodeError);
  expect((err as Error).message).toBe(
    'payload sealed with codec key "retired-2025", which this process does not have (it has: current); add that key to AMPSYNC_CODEC_KEY_FILE',
  );
});

test('the same key id with another key, or altered ciphertext, fails authentication', async () => {
  const sealed = await new AesGcmPayloadCodec({ keys: [{ id: 'k', key: keyA }] }).encode([payloadOf(input)]);
  const impostor = new AesGcmPayloadCodec({ keys: [{ id: 'k', key: keyB }] });
  await expect(impostor.decode(sealed)).rejects.toThrow('payload sealed with codec key "k" fails authentication');
  const data = Buffer.from(sealed[0]!.data!);
  data[IV_BYTES + 3]! ^= 0xff;
  const genuine = new AesGcmPayloadCodec({ keys: [{ id: 'k', key: keyA }] });
  await expect(genuine.decode([{ ...sealed[0]!, data }])).rejects.toBeInstanceOf(CodecDecodeError);
  const short = { ...sealed[0]!, data: data.subarray(0, IV_BYTES + TAG_BYTES - 1) };
  await expect(genuine.decode([short])).rejects.toThrow('too short to be AES-GCM');
});

test('keys are read as base64 or hex and must be 32 bytes', () => {
  expect(parseCodecKey(keyA.toString('base64'), 'K')).toEqual(new Uint8Array(keyA));
  expect(parseCodecKey(keyA.toString('hex'), 'K')).toEqual(new Uint8Array(keyA));
  expect(() => parseCodecKey(Buffer.alloc(16).toString('base64'), 'AMPSYNC_CODEC_KEY')).toThrow(
    'AMPSYNC_CODEC_KEY decodes to 16 bytes; AES-256 needs 32',
  );
  expect(() => parseCodecKey('not a key!', 'AMPSYNC_CODEC_KEY')).toThrow(CodecKeyError);
});

describe('codecFromEnv', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ampsync-codec-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('no variables: no codec', () => {
    expect(codecFromEnv({})).toBeUndefined();
  });

  test('AMPSYNC_CODEC_KEY needs AMPSYNC_CODEC_KEY_ID, and the id alone is a mistake', () => {
    expect(() => codecFromEnv({ AMPSYNC_CODEC_KEY: keyA.toString('base64') })).toThrow(
      'AMPSYNC_CODEC_KEY is set without AMPSYNC_CODEC_KEY_ID',
    );
    expect(() => codecFromEnv({ AMPSYNC_CODEC_KEY_ID: 'k1' })).toThrow(
      'AMPSYNC_CODEC_KEY_ID is set but neither AMPSYNC_CODEC_KEY nor AMPSYNC_CODEC_KEY_FILE is',
    );
    const codec = codecFromEnv({ AMPSYNC_CODEC_KEY: keyA.toString('base64'), AMPSYNC_CODEC_KEY_ID: 'k1' });
    expect(codec?.activeKeyId).toBe('k1');
  });

  test('a key file holds several keys; AMPSYNC_CODEC_KEY_ID picks the active one, the first line by default', async () => {
    const file = path.join(dir, 'keys');
    fs.writeFileSync(
      file,
      `# rotated monthly\nk-2026-10 ${keyA.toString('base64')}\nk-2026-11=${keyB.toString('hex')}\n`,
    );
    const byDefault = codecFromEnv({ AMPSYNC_CODEC_KEY_FILE: file });
    expect(byDefault?.activeKeyId).toBe('k-2026-10');
    expect(byDefault?.keyIds).toEqual(['k-2026-10', 'k-2026-11']);
    const picked = codecFromEnv({ AMPSYNC_CODEC_KEY_FILE: file, AMPSYNC_CODEC_KEY_ID: 'k-2026-11' })!;
    const sealed = await picked.encode([payloadOf(input)]);
    expect(text(sealed[0]!.metadata?.[KEY_ID_METADATA_KEY])).toBe('k-2026-11');
    expect(defaultPayloadConverter.fromPayload((await byDefault!.decode(sealed))[0]!)).toEqual(input);
    expect(() => codecFromEnv({ AMPSYNC_CODEC_KEY_FILE: file, AMPSYNC_CODEC_KEY_ID: 'k-2027-01' })).toThrow(
      'active codec key "k-2027-01" is not among the keys (k-2026-10, k-2026-11)',
    );
  });

  test('a bad key file names the file and the line; a missing one names the file', () => {
    const file = path.join(dir, 'bad-keys');
    fs.writeFileSync(file, `k1 ${keyA.toString('base64')}\nk2\n`);
    expect(() => codecFromEnv({ AMPSYNC_CODEC_KEY_FILE: file })).toThrow(
      `${file} line 2: expected "<key id> <base64 key>"`,
    );
    expect(() => codecFromEnv({ AMPSYNC_CODEC_KEY_FILE: path.join(dir, 'nope') })).toThrow(
      `AMPSYNC_CODEC_KEY_FILE: cannot read ${path.join(dir, 'nope')} (ENOENT)`,
    );
  });
});
