/** Every test file may map rows: the fingerprint hash (WebAssembly) is loaded before its first test. */
import { loadFingerprintHash } from '../../src/diff/canonical';

beforeAll(() => loadFingerprintHash());
