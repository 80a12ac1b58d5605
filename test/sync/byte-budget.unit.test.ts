/** ByteBudget: users wait while others hold bytes they would go over the limit with; one always goes. */
import { setTimeout as delay } from 'node:timers/promises';
import { ByteBudget } from '../../src/sync/byte-budget';

describe('ByteBudget', () => {
  test('holds a user back while others hold bytes it would go over the limit with; one user always goes', async () => {
    const budget = new ByteBudget(100);
    await budget.acquire(150);
    let second = false;
    const waiting = budget.acquire(10).then(() => (second = true));
    await delay(1);
    expect(second).toBe(false);
    budget.release(150);
    await waiting;
    expect(second).toBe(true);
    await budget.acquire(90);
    budget.release(90);
    budget.release(10);
  });

  test('users whose bytes fit together all go at once; a waiting user goes once enough is given back', async () => {
    const budget = new ByteBudget(100);
    await Promise.all([budget.acquire(40), budget.acquire(50)]);
    let third = false;
    const waiting = budget.acquire(20).then(() => (third = true));
    await delay(1);
    expect(third).toBe(false);
    budget.release(40);
    await waiting;
    expect(third).toBe(true);
  });
});
