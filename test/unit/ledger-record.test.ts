import assert from 'node:assert/strict';
import { toMovement } from '../../ledger/batch';
import { Movement, movementProblem } from '../../store/ledger-apply';

/** A take record as the Lua scripts write it (one JSON field `m`). */
function entry(fields: Record<string, string>) {
  return { stream: 'inv:{s0}:ledger', shard: 0, id: '1700000000000-0', fields: ['m', JSON.stringify(fields)] };
}

const take = { id: 'take:o-1:p1', kind: 'take', sku: 'sku-1', qty: '2', from: 'pool', to: 'reserved', order: 'o-1', partition: 'p1', epoch: '1', seq: '7', at: '1700000000123' };

describe('ledger records', () => {
  it('carries the partition change number of a record into its movement', () => {
    const parsed = toMovement(entry(take));
    assert.ok('movement' in parsed, JSON.stringify(parsed));
    assert.deepEqual([parsed.movement.partitionId, parsed.movement.partitionSeq, parsed.movement.source], ['p1', 7, 'redis:s0:1700000000000-0']);
  });

  it('leaves the change number out of a record with no partition (a confirm)', () => {
    const parsed = toMovement(entry({ id: 'confirm:o-1:sku-1', kind: 'confirm', sku: 'sku-1', qty: '2', from: 'reserved', to: 'committed', order: 'o-1' }));
    assert.ok('movement' in parsed);
    assert.equal(parsed.movement.partitionSeq, undefined);
  });

  it('sends a record whose change number is not a positive integer to the dead letters, saying why', () => {
    for (const seq of ['0', '-3', 'x', '']) {
      const parsed = toMovement(entry({ ...take, seq }));
      assert.ok('problem' in parsed, seq);
      assert.match(parsed.problem, /partitionSeq/);
    }
  });

  it('refuses a change number without a partition', () => {
    const m: Movement = { eventId: 'e', kind: 'take', sku: 's', qty: 1, from: 'pool', to: 'reserved', partitionSeq: 3, source: 'admin' };
    assert.equal(movementProblem(m), 'partitionSeq without partitionId');
    assert.equal(movementProblem({ ...m, partitionId: 'p1' }), undefined);
  });
});
