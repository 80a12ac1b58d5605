/** workerHeapFlag and workerAllocatorEnv: when `ampsync worker` runs itself again, under which heap limit and environment. */
import { WorkerHeapConfigError, workerAllocatorEnv, workerHeapFlag } from '../../src/worker/heap';

test('without a heap flag the worker asks for 1024 MB, or the size AMPSYNC_WORKER_HEAP_MB names', () => {
  expect(workerHeapFlag([], {})).toBe('--max-old-space-size=1024');
  expect(workerHeapFlag(['--enable-source-maps'], { NODE_OPTIONS: '--trace-warnings' })).toBe(
    '--max-old-space-size=1024',
  );
  expect(workerHeapFlag([], { AMPSYNC_WORKER_HEAP_MB: '2048' })).toBe('--max-old-space-size=2048');
});

test("a limit node already has is kept, and 0 keeps node's default", () => {
  expect(workerHeapFlag(['--max-old-space-size=512'], {})).toBeNull();
  expect(workerHeapFlag(['--max_old_space_size=512'], {})).toBeNull();
  expect(workerHeapFlag([], { NODE_OPTIONS: '--require x --max-old-space-size=3000' })).toBeNull();
  expect(workerHeapFlag([], { AMPSYNC_WORKER_HEAP_MB: '0' })).toBeNull();
});

test('a value that is not a usable heap size is refused, naming the variable', () => {
  for (const bad of ['lots', '1.5', '-1', '100']) {
    expect(() => workerHeapFlag([], { AMPSYNC_WORKER_HEAP_MB: bad })).toThrow(WorkerHeapConfigError);
  }
  expect(() => workerHeapFlag([], { AMPSYNC_WORKER_HEAP_MB: 'lots' })).toThrow(/AMPSYNC_WORKER_HEAP_MB="lots"/);
});

test("on Linux the worker caps glibc's malloc arenas at 2 unless the environment already sets them", () => {
  expect(workerAllocatorEnv({}, 'linux')).toEqual({ MALLOC_ARENA_MAX: '2' });
  expect(workerAllocatorEnv({ NODE_OPTIONS: '--max-old-space-size=512' }, 'linux')).toEqual({ MALLOC_ARENA_MAX: '2' });
  // a user's value stands, even one that is glibc's default
  expect(workerAllocatorEnv({ MALLOC_ARENA_MAX: '8' }, 'linux')).toBeNull();
  expect(workerAllocatorEnv({ MALLOC_ARENA_MAX: '2' }, 'linux')).toBeNull();
  // other platforms' allocators do not read it
  expect(workerAllocatorEnv({}, 'darwin')).toBeNull();
  expect(workerAllocatorEnv({}, 'win32')).toBeNull();
});
