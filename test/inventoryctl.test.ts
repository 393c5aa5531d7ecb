import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { ReserveOutcome } from '../gen/inventory/v1/inventory.pb';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';

/** The built binary, run as an operator would: `node dist/cli/inventoryctl.js`. */
const BIN = path.resolve(__dirname, '..', 'cli', 'inventoryctl.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment of a shell with none of the CLI's own variables, so only what a test gives counts. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of ['INVENTORY_ADDR', 'ADMIN_ADDR', 'INVENTORY_ADMIN_TOKEN', 'ADMIN_TOKEN', 'INVENTORY_ADMIN_TOKEN_FILE']) delete env[key];
  return env;
}

function run(args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function json<T = any>(result: Run): T {
  assert.equal(result.code, 0, `exit ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

describe('inventoryctl (the built binary against a real server)', function () {
  this.timeout(90_000);
  let inv: InventoryFixture;
  let env: NodeJS.ProcessEnv;
  const ctl = (...args: string[]) => run(args, env);

  before(async () => {
    // No top-up: these tests move base and pool by hand and read them back.
    inv = await startInventory('ctl', { TOPUP_THRESHOLD: '0' });
    env = { ...cleanEnv(), INVENTORY_ADDR: inv.server.inventoryAddress, ADMIN_ADDR: inv.server.adminAddress, INVENTORY_ADMIN_TOKEN: inv.config.adminToken };
  });
  after(async () => {
    await inv?.close();
  });

  it('sets, adjusts and reads stock, as a table and as JSON', async () => {
    const set = await ctl('stock', 'set', 'ctl-a', '50', '--per-user-limit', '3', '--reason', 'count');
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stderr, /request id ctl-[0-9a-f-]{36}/);
    const adjusted = json(await ctl('--json', 'stock', 'adjust', 'ctl-a', '-5', '--request-id', 'adj-1'));
    assert.equal(adjusted.requestId, 'adj-1');
    assert.deepEqual([adjusted.replayed, adjusted.stock.onHand, adjusted.stock.base], [false, 45, 45]);
    // The same request id again applies nothing more.
    const replay = json(await ctl('--json', 'stock', 'adjust', 'ctl-a', '-5', '--request-id', 'adj-1'));
    assert.deepEqual([replay.replayed, replay.stock.onHand], [true, 45]);

    const table = await ctl('stock', 'get', 'ctl-a');
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /on_hand/);
    assert.match(table.stdout, /│ ctl-a\s+│\s+45 │\s+45 │\s+0 │/);
    const [level] = json(await ctl('stock', 'get', 'ctl-a', '--json'));
    assert.deepEqual([level.skuId, level.onHand, level.sellable, level.perUserLimit, level.reserved], ['ctl-a', 45, 45, 3, 0]);
  });

  it('prepares a flash sale in one step, verified, and changes nothing when run again', async () => {
    const prepared = json(await ctl('--json', 'flash-sale', 'prepare', 'ctl-fs', '--units', '60', '--partitions', '3', '--per-user-limit', '2'));
    assert.equal(prepared.verified, true);
    assert.deepEqual(prepared.steps.map((s: any) => s.requestId), [`${prepared.requestId}.stock`, `${prepared.requestId}.pool`]);
    const listed = json<any[]>(await ctl('--json', 'partitions', 'list', 'ctl-fs'));
    assert.equal(listed.length, 3);
    assert.ok(listed.every((p) => p.state === 'LIVE' && p.skuId === 'ctl-fs'));
    assert.equal(listed.reduce((sum, p) => sum + p.avail, 0), 60);

    const again = json(await ctl('--json', 'flash-sale', 'prepare', 'ctl-fs', '--units', '60', '--partitions', '3', '--per-user-limit', '2'));
    assert.equal(again.verified, true);
    assert.deepEqual(again.steps.map((s: any) => s.requestId), [null, null], 'every step was already true');
    assert.deepEqual(json<any[]>(await ctl('--json', 'partitions', 'list', 'ctl-fs')).map((p) => p.partitionId).sort(), listed.map((p) => p.partitionId).sort());
    const [level] = json(await ctl('--json', 'stock', 'get', 'ctl-fs'));
    assert.deepEqual([level.onHand, level.pool, level.base, level.perUserLimit], [60, 60, 0, 2]);
  });

  it('rebalances and drains, with one request id per SKU and partition', async () => {
    assert.equal((await ctl('flash-sale', 'prepare', 'ctl-rb', '--units', '40', '--partitions', '4')).code, 0);
    const [rebalanced] = json<any[]>(await ctl('--json', 'rebalance', 'ctl-rb', '--pool', '30', '--partitions', '2', '--request-id', 'rb-1'));
    assert.equal(rebalanced.requestId, 'rb-1.ctl-rb');
    assert.equal(rebalanced.before.length, 4);
    const live = json<any[]>(await ctl('--json', 'partitions', 'list', 'ctl-rb'));
    assert.deepEqual([live.length, live.reduce((sum, p) => sum + p.avail, 0)], [2, 30]);

    const drained = json<any[]>(await ctl('--json', 'drain', 'ctl-rb', live[0].partitionId));
    assert.equal(drained.length, 1);
    assert.deepEqual([drained[0].returned, drained[0].partition.state], [live[0].avail, 'DRAINED']);
    const [level] = json(await ctl('--json', 'stock', 'get', 'ctl-rb'));
    assert.deepEqual([level.pool, level.base], [30 - live[0].avail, 10 + live[0].avail]);
    const rest = json<any[]>(await ctl('--json', 'drain', 'ctl-rb', '--all'));
    assert.deepEqual(rest.map((d) => d.partitionId), [live[1].partitionId]);
    assert.deepEqual(json<any[]>(await ctl('--json', 'partitions', 'list', 'ctl-rb')), []);
  });

  it('reconciles: clean is 0, a discrepancy made in Redis is 4, --repair fixes it', async () => {
    assert.equal((await ctl('flash-sale', 'prepare', 'ctl-rc', '--units', '10', '--partitions', '1')).code, 0);
    const clean = await ctl('reconcile', 'ctl-rc');
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    assert.match(clean.stdout, /0 discrepancies/);

    // A Redis failover lost 3 units of the partition.
    const [p] = inv.services.cache.partitions('ctl-rc');
    const { shards } = inv.services;
    await shards.client(p.shard).hincrby(shards.keys.partition(p.shard, 'ctl-rc', p.partitionId), 'avail', -3);
    const found = await ctl('--json', 'reconcile', 'ctl-rc');
    assert.equal(found.code, 4, found.stderr);
    const report = JSON.parse(found.stdout);
    assert.deepEqual(report.discrepancies.map((d: any) => [d.kind, d.partitionId, d.repaired]), [['POOL_MISMATCH', p.partitionId, false]]);
    assert.equal(report.unrepaired, 1);
    const table = await ctl('reconcile', 'ctl-rc');
    assert.equal(table.code, 4);
    assert.match(table.stdout, /POOL_MISMATCH/);

    const repaired = await ctl('--json', 'reconcile', 'ctl-rc', '--repair');
    assert.equal(repaired.code, 0, repaired.stderr);
    assert.ok(JSON.parse(repaired.stdout).discrepancies.every((d: any) => d.repaired));
    assert.equal((await ctl('reconcile', 'ctl-rc')).code, 0);
  });

  it('reads a reservation', async () => {
    await ctl('flash-sale', 'prepare', 'ctl-res', '--units', '5', '--partitions', '1');
    const reserved = await inv.reserve('ctl-order-1', [['ctl-res', 2]], { userId: 'u-1' });
    assert.equal(reserved.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    const view = json(await ctl('--json', 'reservation', 'get', 'ctl-order-1'));
    assert.deepEqual([view.orderId, view.state, view.userId, view.items[0].skuId, view.items[0].quantity], ['ctl-order-1', 'RESERVED', 'u-1', 'ctl-res', 2]);
    const missing = await ctl('reservation', 'get', 'no-such-order');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /NOT_FOUND.*RESERVATION_NOT_FOUND/);
  });

  it('watches a SKU sell out: --once, then --until-sold-out while buyers reserve', async () => {
    assert.equal((await ctl('flash-sale', 'prepare', 'ctl-w', '--units', '20', '--partitions', '2')).code, 0);
    const [frame] = (await ctl('--json', 'watch', 'ctl-w', '--once')).stdout.trim().split('\n').map((line) => JSON.parse(line));
    assert.deepEqual([frame.stock.sellable, frame.partitions.length, frame.soldOut], [20, 2, false]);

    const watcher = spawn(process.execPath, [BIN, '--json', 'watch', 'ctl-w', '--interval', '100', '--until-sold-out'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const frames: any[] = [];
    createInterface({ input: watcher.stdout }).on('line', (line) => frames.push(JSON.parse(line)));
    const exited = new Promise<number | null>((resolve) => watcher.once('exit', resolve));
    await waitFor(() => frames.length > 0, 10_000, 'a first frame');
    for (let i = 0; i < 10; i++) {
      const res = await inv.reserve(`ctl-w-${i}`, [['ctl-w', 2]]);
      assert.equal(res.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    }
    assert.equal(await exited, 0);
    const last = frames.at(-1);
    assert.deepEqual([last.soldOut, last.stock.sellable, last.soldSinceStart], [true, 0, 20]);
    assert.ok(frames.length >= 2);
  });

  it('stops watching cleanly on Ctrl-C (SIGINT), exit code 0', async () => {
    await ctl('flash-sale', 'prepare', 'ctl-int', '--units', '3', '--partitions', '1');
    const watcher = spawn(process.execPath, [BIN, 'watch', 'ctl-int', '--interval', '100'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    watcher.stdout.on('data', (chunk) => (out += chunk));
    const exited = new Promise<number | null>((resolve) => watcher.once('exit', resolve));
    await waitFor(() => out.includes('units/s'), 10_000, 'a first frame');
    watcher.kill('SIGINT');
    assert.equal(await exited, 0);
    assert.match(out, /ctl-int/);
  });

  it('demo buy sells through InventoryService and buys nothing twice under the same id', async () => {
    assert.equal((await ctl('flash-sale', 'prepare', 'ctl-demo', '--units', '12', '--partitions', '2', '--per-user-limit', '1')).code, 0);
    const first = json(await ctl('--json', 'demo', 'buy', 'ctl-demo', '--buyers', '15', '--rate', '500', '--request-id', 'buy-1'));
    assert.deepEqual([first.reserved, first.unitsReserved, first.outOfStock, first.failed], [12, 12, 3, {}]);
    const again = json(await ctl('--json', 'demo', 'buy', 'ctl-demo', '--buyers', '15', '--rate', '500', '--request-id', 'buy-1'));
    assert.equal(again.reserved, 12, 'the same orders, replayed');
    const [level] = json(await ctl('--json', 'stock', 'get', 'ctl-demo'));
    assert.equal(level.sellable, 0);
    await inv.services.ledger.drain(20_000);
    const [settled] = json(await ctl('--json', 'stock', 'get', 'ctl-demo'));
    assert.equal(settled.reserved, 12);
  });

  describe('exit codes and the token', () => {
    it('no admin token: a usage error that says where to put it, before any call', async () => {
      const { INVENTORY_ADMIN_TOKEN: _, ...noToken } = env;
      const res = await run(['stock', 'set', 'ctl-t', '1'], noToken);
      assert.equal(res.code, 2);
      assert.match(res.stderr, /no admin token: set INVENTORY_ADMIN_TOKEN/);
      assert.doesNotMatch(res.stderr, /request id/);
      // Reads of InventoryService need none.
      assert.equal((await run(['stock', 'get', 'ctl-a'], noToken)).code, 0);
    });

    it('takes the token from --token-file or ADMIN_TOKEN; a wrong one is refused (1)', async () => {
      const { INVENTORY_ADMIN_TOKEN: _, ...noToken } = env;
      const dir = mkdtempSync(path.join(os.tmpdir(), 'ctl-token-'));
      try {
        const file = path.join(dir, 'token');
        writeFileSync(file, `${inv.config.adminToken}\n`, { mode: 0o600 });
        assert.equal((await run(['--token-file', file, 'partitions', 'list', 'ctl-fs'], noToken)).code, 0);
        assert.equal((await run(['partitions', 'list', 'ctl-fs'], { ...noToken, ADMIN_TOKEN: inv.config.adminToken })).code, 0);
        const missing = await run(['--token-file', path.join(dir, 'nope'), 'partitions', 'list'], noToken);
        assert.equal(missing.code, 2);
        assert.match(missing.stderr, /--token-file .*ENOENT/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      const wrong = await run(['--json', 'partitions', 'list'], { ...noToken, INVENTORY_ADMIN_TOKEN: 'not-the-token' });
      assert.equal(wrong.code, 1);
      assert.equal(JSON.parse(wrong.stderr).error.kind, 'UNAUTHENTICATED');
    });

    it('bad input is a usage error (2) naming the argument; the server\'s refusals (1) name its field', async () => {
      const cases: Array<[string[], RegExp]> = [
        [['stock', 'set', 'ctl-x', 'ten'], /argument 'on_hand'.*whole number/],
        [['stock', 'set', 'bad{sku}', '1'], /argument 'sku'.*1-128 characters/],
        [['stock', 'adjust', 'ctl-x', '0'], /argument 'delta'.*must not be 0/],
        [['flash-sale', 'prepare', 'ctl-x', '--units', '10', '--partitions', '300'], /--partitions <p>.*from 1 to 256/],
        [['flash-sale', 'prepare', 'ctl-x', '--partitions', '3'], /required option '--units <n>'/],
        [['drain', 'ctl-x'], /name the partitions or give --all/],
        [['no-such-command'], /unknown command/],
      ];
      for (const [args, message] of cases) {
        const res = await ctl(...args);
        assert.equal(res.code, 2, `${args.join(' ')}: ${res.stderr}`);
        assert.match(res.stderr, message, args.join(' '));
      }
      const refused = await ctl('--json', 'rebalance', 'ctl-fs', '--pool', '10', '--nodes', '10.0.0.1:1');
      assert.equal(refused.code, 1);
      const { error } = JSON.parse(refused.stderr.split('\n').filter(Boolean).at(-1)!);
      assert.deepEqual([error.kind, error.field], ['INVALID_ARGUMENT', 'redis_nodes']);
    });

    it('an unreachable server is 3, with the request id to retry under', async () => {
      const res = await run(['--admin-addr', '127.0.0.1:1', '--timeout', '1500', 'stock', 'adjust', 'ctl-a', '1', '--request-id', 'gone-1'], env);
      assert.equal(res.code, 3, res.stderr);
      assert.match(res.stderr, /no answer: UNAVAILABLE/);
      assert.match(res.stderr, /--request-id gone-1/);
    });

    it('help is 0 and lists the exit codes', async () => {
      const res = await ctl('--help');
      assert.equal(res.code, 0);
      assert.match(res.stdout, /Exit codes:[\s\S]*4 {2}a check found differences/);
    });
  });
});

describe('inventoryctl over TLS', function () {
  this.timeout(60_000);
  let inv: InventoryFixture;
  let dir: string;
  let cert: string;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'ctl-tls-'));
    cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    inv = await startInventory('ctltls', { ADMIN_TLS_CERT: cert, ADMIN_TLS_KEY: key, INVENTORY_TLS_CERT: cert, INVENTORY_TLS_KEY: key });
  });
  after(async () => {
    await inv?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('calls both services with --ca; plaintext to a TLS port gets no answer (3)', async () => {
    const env = {
      ...cleanEnv(),
      INVENTORY_ADDR: `localhost:${inv.server.app.inventoryPort}`,
      ADMIN_ADDR: `localhost:${inv.server.app.adminPort}`,
      INVENTORY_ADMIN_TOKEN: inv.config.adminToken,
    };
    const set = await run(['--ca', cert, '--json', 'stock', 'set', 'ctl-tls', '7'], env);
    assert.equal(json(set).stock.onHand, 7);
    assert.equal(json(await run(['--ca', cert, '--json', 'stock', 'get', 'ctl-tls'], env))[0].onHand, 7);
    const plain = await run(['--timeout', '1500', 'stock', 'get', 'ctl-tls'], env);
    assert.equal(plain.code, 3, plain.stderr);
    const unreadable = await run(['--ca', path.join(dir, 'missing.pem'), 'stock', 'get', 'ctl-tls'], env);
    assert.equal(unreadable.code, 2);
    assert.match(unreadable.stderr, /--ca .*ENOENT/);
  });
});
