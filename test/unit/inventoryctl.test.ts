import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { CommanderError, InvalidArgumentError } from 'commander';
import { inventoryError } from '../../client';
import { id, nonZeroDelta, wholeNumber } from '../../cli/ctl/args';
import { SellRate } from '../../cli/ctl/commands/watch';
import { CtlFailure, ExitCode } from '../../cli/ctl/exit-codes';
import { EXIT_BUG, report } from '../../cli/ctl/failures';
import { EXIT_CODES } from '../../cli/ctl/program';
import { adminToken } from '../../cli/ctl/token';

describe('inventoryctl: parsing, exit codes, sell rate', () => {
  it('parses whole numbers, deltas and ids, naming what is wrong', () => {
    assert.equal(wholeNumber(0)('42'), 42);
    assert.equal(wholeNumber(1, 256)('256'), 256);
    assert.throws(() => wholeNumber(1, 256)('257'), (err: Error) => err instanceof InvalidArgumentError && /from 1 to 256/.test(err.message));
    for (const bad of ['1.5', '', 'ten', '1e3', ' ', '9007199254740993']) assert.throws(() => wholeNumber(0)(bad), InvalidArgumentError, bad);
    assert.throws(() => wholeNumber(0)('-1'), /whole number >= 0/);
    assert.equal(nonZeroDelta('-5'), -5);
    assert.throws(() => nonZeroDelta('0'), /must not be 0/);
    assert.equal(id('sku-1.a:b_c'), 'sku-1.a:b_c');
    assert.throws(() => id('bad{sku}'), /1-128 characters/);
  });

  it('maps every failure to its exit code', () => {
    const unavailable = inventoryError({ code: status.UNAVAILABLE, details: 'down', requestId: 'r-1' });
    assert.equal(report(unavailable).exitCode, ExitCode.UNREACHABLE);
    assert.match(report(unavailable).message!, /--request-id r-1/);
    assert.equal(report(inventoryError({ code: status.DEADLINE_EXCEEDED, details: 'slow' })).exitCode, ExitCode.UNREACHABLE);
    const refused = report(inventoryError({ code: status.INVALID_ARGUMENT, details: 'bad', reason: 'INVALID_FIELD', field: 'on_hand' }));
    assert.equal(refused.exitCode, ExitCode.REFUSED);
    assert.match(refused.message!, /refused: INVALID_ARGUMENT \(reason INVALID_FIELD, field on_hand\): bad/);
    assert.deepEqual([refused.json!.field, refused.json!.reason], ['on_hand', 'INVALID_FIELD']);
    assert.equal(report(inventoryError({ code: status.UNAUTHENTICATED, details: 'token', reason: 'UNAUTHENTICATED' })).exitCode, ExitCode.REFUSED);
    assert.equal(report(new CtlFailure(ExitCode.DIFFERENCES, 'found')).exitCode, 4);
    assert.equal(report(new CommanderError(1, 'commander.helpDisplayed', '')).exitCode, ExitCode.OK);
    assert.equal(report(new CommanderError(1, 'commander.unknownCommand', 'x')).exitCode, ExitCode.USAGE);
    assert.equal(report(new TypeError('oops')).exitCode, EXIT_BUG);
  });

  it('lists every exit code in the help', () => {
    for (const code of [...Object.values(ExitCode), EXIT_BUG]) assert.match(EXIT_CODES, new RegExp(`\\n  ${code} +\\S`), `exit code ${code}`);
  });

  it('takes the admin token from the environment, never without one', () => {
    assert.equal(adminToken({ env: { INVENTORY_ADMIN_TOKEN: ' t-1 \n', ADMIN_TOKEN: 't-2' } }), 't-1');
    assert.equal(adminToken({ env: { ADMIN_TOKEN: 't-2' } }), 't-2');
    assert.throws(() => adminToken({ env: {} }), (err: Error) => err instanceof CtlFailure && err.exitCode === ExitCode.USAGE && /INVENTORY_ADMIN_TOKEN/.test(err.message));
  });

  it('measures units sold since the start and per second over the last 5 s', () => {
    const rate = new SellRate();
    rate.add(0, 100);
    assert.deepEqual([rate.soldSinceStart(), rate.unitsPerSecond()], [0, 0]);
    rate.add(1000, 90);
    rate.add(2000, 70);
    assert.deepEqual([rate.soldSinceStart(), rate.unitsPerSecond()], [30, 15]);
    // Older samples leave the window: 10 s later at 20 units/s over the last 5 s.
    for (let s = 3; s <= 12; s++) rate.add(s * 1000, 70 - (s - 2) * 5);
    assert.equal(rate.soldSinceStart(), 80);
    assert.equal(rate.unitsPerSecond(), 5);
    // A restock is not a negative rate.
    rate.add(13_000, 500);
    assert.equal(rate.unitsPerSecond(), 0);
  });
});
