import assert from 'node:assert/strict';
import os from 'node:os';
import { RowDataPacket } from 'mysql2/promise';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';
import { LogLine, ServerProcess, spawnServerBeside } from './helpers/server-process';

/** LEDGER_WRITER=process: the ledger writer runs in a child process the server supervises. */
describe('ledger writer as a child process of the server', () => {
  let inv: InventoryFixture;
  let server: ServerProcess | undefined;

  before(async () => {
    // This process only seeds and reserves; the spawned server's child is the only writer.
    inv = await startInventory('ledgerproc', { LEDGER_WRITER: 'off' });
    await inv.stock('lp-sku', 100, 2);
    server = await spawnServerBeside(inv.config, {
      LEDGER_WRITER: 'process',
    });
  });
  after(async () => {
    await server?.stop();
    await inv?.close();
  });

  const started = (line: LogLine) => line.msg === 'started child process' && line.child === 'ledger-writer';
  const childPids = () => server!.lines.filter(started).map((l) => Number(l.childPid));
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  async function takesInMysql(): Promise<number> {
    const [[row]] = await inv.services.mysql.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM ledger WHERE kind = 'take' AND sku_id = 'lp-sku'");
    return Number(row.n);
  }

  it('applies the records to MySQL, is restarted when it dies, and leaves with the server', async () => {
    await server!.waitForLine(started);
    const [first] = childPids();
    assert.ok(alive(first), 'the child runs');
    assert.equal(os.getPriority(first), Math.min(19, os.getPriority(server!.child.pid) + 10), 'at a lower CPU priority than its server (LEDGER_WRITER_NICE 10)');

    for (let i = 0; i < 5; i++) await inv.reserve(`lp-a-${i}`, [['lp-sku', 1]]);
    await waitFor(async () => (await takesInMysql()) === 5, 15_000);
    // It runs no Lua script, so it keeps no script connection (the server names its own by pid).
    const clients = String(await inv.services.shards.clients[0].call('CLIENT', 'LIST'));
    assert.ok(clients.includes(`name=inventory-ledger:${first}`), 'the child reads the streams');
    assert.ok(!clients.includes(`name=inventory-scripts:${first}`), 'and opened no script connection');

    process.kill(first, 'SIGKILL');
    await server!.waitForLine((line) => line.msg === 'child process exited; restarting it');
    await waitFor(() => childPids().length === 2, 15_000);
    const second = childPids()[1];
    assert.notEqual(second, first);
    for (let i = 0; i < 5; i++) await inv.reserve(`lp-b-${i}`, [['lp-sku', 1]]);
    await waitFor(async () => (await takesInMysql()) === 10, 15_000);

    assert.equal(await server!.stop(), 0, 'the server exits cleanly');
    server = undefined;
    await waitFor(() => !alive(second), 5_000);
  });
});

/** WORKERS=2 with LEDGER_WRITER=inline: one writer for the host, in the cluster primary, not one per worker. */
describe('ledger writer of a cluster', () => {
  let inv: InventoryFixture;
  let server: ServerProcess | undefined;

  before(async () => {
    inv = await startInventory('ledgercluster', { LEDGER_WRITER: 'off' });
    await inv.stock('lc-sku', 100, 2);
    server = await spawnServerBeside(inv.config, {
      WORKERS: '2',
      LEDGER_WRITER: 'inline',
    });
  });
  after(async () => {
    await server?.stop();
    await inv?.close();
  });

  it('runs one writer, in the primary, and it applies the records', async () => {
    const primary = await server!.waitForLine((line) => line.msg === 'cluster primary: starting workers');
    await server!.waitForLine((line) => line.msg === 'ledger writer started');
    await waitFor(() => server!.lines.filter((line) => line.msg === 'inventory core listening').length === 2, 20_000, 'both workers');
    for (let i = 0; i < 5; i++) await inv.reserve(`lc-${i}`, [['lc-sku', 1]]);
    await waitFor(async () => {
      const [[row]] = await inv.services.mysql.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM ledger WHERE kind = 'take' AND sku_id = 'lc-sku'");
      return Number(row.n) === 5;
    }, 15_000);
    const writers = server!.lines.filter((line) => line.msg === 'ledger writer started');
    assert.deepEqual(writers.map((line) => line.pid), [primary.pid], 'exactly one writer, in the primary');
  });
});
