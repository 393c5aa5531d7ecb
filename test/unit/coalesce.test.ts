import assert from 'node:assert/strict';
import { Coalescer } from '../../allocator/coalesce';

/** A run the test finishes by hand, with a record of when it started. */
function gate<T>() {
  let open!: (value: T) => void;
  let fail!: (err: Error) => void;
  const promise = new Promise<T>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

type Tagged<T> = { value: T; first: boolean };

/** Runs through the coalescer with each answer tagged: first (the run's own caller) or a duplicate. */
function tagged<T>(c: Coalescer<Tagged<T>>, key: string, work: () => Promise<T>): Promise<Tagged<T>> {
  return c.run(key, () => work().then((value) => ({ value, first: true })), (answer) => ({ ...answer, first: false }));
}

describe('Coalescer', () => {
  it('runs a lone call at once, as the first, and forgets the key when it ends', async () => {
    const c = new Coalescer<Tagged<number>>();
    assert.deepEqual(await tagged(c, 'k', async () => 7), { value: 7, first: true });
    assert.equal(c.size, 0);
  });

  it('lets the calls that arrive during a run share the next run, started after they arrived', async () => {
    const c = new Coalescer<Tagged<string>>();
    const runs: Array<ReturnType<typeof gate<string>>> = [];
    const work = (name: string) => () => {
      const g = gate<string>();
      runs.push(g);
      return g.promise.then((v) => `${v} by ${name}`);
    };
    const a = tagged(c, 'k', work('a'));
    const b = tagged(c, 'k', work('b'));
    const c2 = tagged(c, 'k', work('c'));
    await tick();
    assert.equal(runs.length, 1, 'b and c wait: a run is in progress');
    runs[0].open('one');
    assert.deepEqual(await a, { value: 'one by a', first: true });
    await tick();
    assert.equal(runs.length, 2, 'the next run started when the first ended');
    const d = tagged(c, 'k', work('d'));
    runs[1].open('two');
    assert.deepEqual(await b, { value: 'two by b', first: true }, 'b arrived first: its work runs');
    assert.deepEqual(await c2, { value: 'two by b', first: false });
    await tick();
    assert.equal(runs.length, 3, 'd arrived during the second run: it gets a third');
    runs[2].open('three');
    assert.deepEqual(await d, { value: 'three by d', first: true });
    await tick();
    assert.equal(c.size, 0);
  });

  it('keeps keys apart', async () => {
    const c = new Coalescer<Tagged<string>>();
    const slow = gate<string>();
    const x = tagged(c, 'x', () => slow.promise);
    const y = await tagged(c, 'y', async () => 'y');
    assert.deepEqual(y, { value: 'y', first: true });
    slow.open('x');
    assert.deepEqual(await x, { value: 'x', first: true });
  });

  it('fails every caller of a failed run, and the next run still happens', async () => {
    const c = new Coalescer<Tagged<string>>();
    const first = gate<string>();
    const second = gate<string>();
    const a = tagged(c, 'k', () => first.promise);
    const b = tagged(c, 'k', () => second.promise);
    const b2 = tagged(c, 'k', () => Promise.resolve('never used'));
    first.fail(new Error('boom'));
    await assert.rejects(a, /boom/);
    second.fail(new Error('bang'));
    await assert.rejects(b, /bang/);
    await assert.rejects(b2, /bang/);
    assert.deepEqual(await tagged(c, 'k', () => Promise.resolve('ok')), { value: 'ok', first: true });
    assert.equal(c.size, 0);
  });

  it('treats work that throws before returning a promise as a failed run', async () => {
    const c = new Coalescer<Tagged<string>>();
    await assert.rejects(
      tagged(c, 'k', () => {
        throw new Error('sync');
      }),
      /sync/,
    );
    assert.equal(c.size, 0);
  });
});
