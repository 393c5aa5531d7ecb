import assert from 'node:assert/strict';
import type { Attempt } from '../faults/load';
import { healthPath, renderTable, reservesBackAfter, summarizeAnswers } from '../faults/table';

const attempt = (op: Attempt['op'], answer: string, end: number): Attempt => ({ op, orderId: 'o', start: end - 10, end, answer });

describe('fault table', () => {
  it('counts answers per operation, most frequent first', () => {
    const attempts = [attempt('Reserve', 'RESERVED', 1), attempt('Reserve', 'UNAVAILABLE/X', 2), attempt('Reserve', 'RESERVED', 3), attempt('Release', 'OK', 4)];
    assert.equal(summarizeAnswers(attempts), 'Reserve: RESERVED 2, UNAVAILABLE/X 1; Release: OK 1');
  });

  it('times Reserves back from the last failed Reserve after the heal, none when none failed', () => {
    assert.equal(reservesBackAfter([attempt('Reserve', 'RESERVED', 500)], 100), undefined);
    assert.equal(reservesBackAfter([attempt('Reserve', 'UNAVAILABLE/X', 50), attempt('Confirm', 'UNAVAILABLE/X', 900)], 100), 0, 'failed before the heal; Confirm does not count');
    assert.equal(reservesBackAfter([attempt('Reserve', 'UNAVAILABLE/X', 350), attempt('Reserve', 'REJECTED/OUT_OF_STOCK', 900)], 100), 250, 'a REJECTED is an answer, not a failure');
  });

  it('folds health samples into the statuses in order', () => {
    assert.equal(healthPath(['SERVING', 'SERVING', 'NOT_SERVING', 'SERVING'].map((status) => ({ status }))), 'SERVING → NOT_SERVING → SERVING');
  });

  it('renders one markdown row per scenario, marking failures and escaping pipes', () => {
    const table = renderTable([
      { scenario: 'a|b', callers: 'Reserve: RESERVED 1', health: 'SERVING', reservesBackMs: undefined, servingBackMs: 1500, invariants: 'conservation', passed: true },
      { scenario: 'c', callers: '', health: 'SERVING', reservesBackMs: 250, servingBackMs: 0, invariants: 'boom', passed: false },
    ]).split('\n');
    assert.equal(table.length, 4);
    assert.equal(table[2], '| a\\|b | Reserve: RESERVED 1 | SERVING | no Reserve failed; SERVING +1.5 s | conservation |');
    assert.match(table[3], /Reserves OK again \+0\.3 s; SERVING \+0\.0 s \| FAILED: boom \|$/);
  });
});
