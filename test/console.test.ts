import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import amqp from 'amqplib';
import { status } from '@grpc/grpc-js';
import { Browser, Page, chromium } from 'playwright-core';
import {
  ListPartitionsRequest,
  ListPartitionsResponse,
  PreallocateRequest,
  RebalanceRequest,
  SetStockRequest,
} from '../gen/inventory/v1/admin.pb';
import { createLogger } from '../kernel/logger';
import { Config } from '../server/config';
import { WebConsole, createConsole, servedWith } from '../server/console';
import { Metrics } from '../server/metrics';
import { Services, createServices } from '../server/services';
import { testConfig, uniqueName } from './helpers/config';
import { expectCode, unary } from './helpers/grpc';
import { dropNamespace, waitFor } from './helpers/inventory';
import { TestServer, startTestServer } from './helpers/server';

/** Debian's chromium (scripts/setup.sh installs it); playwright-core drives it, no browser download. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

describe('web console', function () {
  this.timeout(60_000);
  let config: Config;
  let services: Services;
  let web: WebConsole;
  let server: TestServer;
  let base: string;
  let seq = 0;
  const rid = (tag: string) => `${tag}-${++seq}`;

  const admin = <T>(method: string, request: unknown) => unary<T>(server.admin, method, request, server.adminAuth());
  const livePartitions = async (sku: string) =>
    (await admin<ListPartitionsResponse>('listPartitions', ListPartitionsRequest.fromPartial({ skuId: sku }))).partitions;
  /** A SKU in MySQL with `onHand` units, `pool` of them carved into `partitions` partitions. */
  async function stocked(sku: string, onHand: number, pool: number, partitions: number): Promise<void> {
    await admin('setStock', SetStockRequest.fromPartial({ requestId: rid('set'), skuId: sku, onHand, reason: 'console test' }));
    await admin('preallocate', PreallocateRequest.fromPartial({ requestId: rid('pre'), skuId: sku, quantity: pool, partitions }));
  }

  /** A console API call with the admin token (or `token`), answered as status and JSON. */
  async function call(path: string, init: RequestInit & { token?: string | null } = {}): Promise<{ status: number; body: any }> {
    const token = init.token === undefined ? config.adminToken : init.token;
    const headers: Record<string, string> = { ...(init.headers as Record<string, string>) };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`${base}api/${path}`, { ...init, headers });
    return { status: res.status, body: await res.json() };
  }
  const post = (path: string, body: unknown, token?: string | null) =>
    call(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), token });

  before(async () => {
    const name = uniqueName('console');
    // An events exchange of the test's own, so that the console hears only what this test publishes.
    config = testConfig(name, { MQ_EVENTS_EXCHANGE: `${name}.events`, TOPUP_THRESHOLD: '0' });
    const logger = createLogger(config.logLevel);
    const metrics = new Metrics();
    services = await createServices(config, logger, metrics);
    web = createConsole(services, config, logger);
    server = await startTestServer({ config, logger, metrics, ...servedWith(services, web) });
    base = `http://127.0.0.1:${server.app.metricsPort}/console/`;
  });
  after(async () => {
    await server?.close();
    if (config) await dropNamespace(config);
  });

  describe('the HTTP API', () => {
    before(() => stocked('con-api', 100, 40, 4));

    it('serves the page to anyone, with no data in it, and the API only with the admin token', async () => {
      const page = await fetch(base);
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
      const html = await page.text();
      assert.match(html, /Inventory console/);
      assert.doesNotMatch(html, /con-api/);
      assert.equal((await fetch(`${base}console.js`)).headers.get('content-type'), 'text/javascript; charset=utf-8');
      assert.equal((await fetch(`${base}../console`, { redirect: 'manual' })).status, 308);

      for (const token of [null, 'wrong-token-1', `${config.adminToken}x`]) {
        const { status: code, body } = await call('overview', { token });
        assert.equal(code, 401, `token ${token}`);
        assert.deepEqual(Object.keys(body), ['error']);
        assert.equal(body.error.code, 'UNAUTHENTICATED');
      }
      assert.equal((await post('rebalance', { requestId: 'r-401', skuId: 'con-api', targetPool: 10, partitionCount: 1 }, null)).status, 401);
      assert.equal((await livePartitions('con-api')).length, 4, 'a refused call changed nothing');
    });

    it('answers the overview: health, breakers, ledger lag, the SKUs\' stock and the event feed', async () => {
      const { status: code, body } = await call('overview');
      assert.equal(code, 200);
      assert.equal(body.health.status, 'SERVING');
      assert.equal(body.health.inventory, 'SERVING');
      assert.ok(Array.isArray(body.breakers));
      assert.ok(body.breakers.every((b: { state: string }) => b.state === 'closed'));
      assert.equal(typeof body.ledger.waiting, 'number');
      const row = body.skus.stock.find((s: { skuId: string }) => s.skuId === 'con-api');
      assert.deepEqual([row.onHand, row.base, row.pool, row.sellable, row.partitions], [100, 60, 40, 100, 4]);
      assert.equal(body.skus.source, 'mysql');
      assert.equal(body.events.exchange, config.mqEventsExchange);

      const filtered = await call('overview?q=con-n');
      assert.deepEqual(filtered.body.skus.stock, []);
    });

    it('lists a SKU\'s partitions as ListPartitions does', async () => {
      const { status: code, body } = await call('partitions?sku=con-api');
      assert.equal(code, 200);
      const grpc = await livePartitions('con-api');
      assert.deepEqual(body.partitions.map((p: { partitionId: string }) => p.partitionId).sort(), grpc.map((p) => p.partitionId).sort());
      assert.deepEqual(
        body.partitions.map((p: { avail: number; state: string }) => [p.avail, p.state]),
        body.partitions.map(() => [10, 'PARTITION_STATE_LIVE']),
      );
    });

    it('refuses bad input with 400 naming the field, the same error AdminService gives, and changes nothing', async () => {
      const bad = { requestId: 'r-bad-1', skuId: 'con-api', targetPool: 10, partitionCount: 300 };
      const { status: code, body } = await post('rebalance', bad);
      assert.equal(code, 400);
      assert.equal(body.error.code, 'INVALID_ARGUMENT');
      assert.equal(body.error.field, 'partition_count');
      const viaGrpc = await expectCode(admin('rebalance', RebalanceRequest.fromPartial(bad)), status.INVALID_ARGUMENT);
      assert.equal(body.error.message, viaGrpc.details);

      const notNumber = await post('rebalance', { ...bad, targetPool: 'lots' });
      assert.deepEqual([notNumber.status, notNumber.body.error.field], [400, 'target_pool']);
      const noId = await post('drain', { skuId: 'con-api', partitionId: 'p-1' });
      assert.deepEqual([noId.status, noId.body.error.field], [400, 'request_id']);
      const badSku = await call('partitions?sku=no%20spaces');
      assert.deepEqual([badSku.status, badSku.body.error.field], [400, 'sku_id']);
      const notObject = await post('drain', [1, 2]);
      assert.deepEqual([notObject.status, notObject.body.error.field], [400, 'body']);
      const notJson = await call('drain', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
      assert.deepEqual([notJson.status, notJson.body.error.field], [400, 'body']);
      const form = await call('drain', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1' });
      assert.equal(form.status, 415);
      assert.equal((await call('rebalance')).status, 405);
      assert.equal((await call('nothing-here')).status, 404);
      const unknown = await post('drain', { requestId: 'r-unknown', skuId: 'con-api', partitionId: 'no-such-partition' });
      assert.deepEqual([unknown.status, unknown.body.error.code], [404, 'NOT_FOUND']);
      assert.equal((await livePartitions('con-api')).length, 4);
    });

    it('drains once per request id: the replay answers replayed', async () => {
      const [first] = await livePartitions('con-api');
      const request = { requestId: rid('drain'), skuId: 'con-api', partitionId: first.partitionId };
      const done = await post('drain', request);
      assert.equal(done.status, 200, JSON.stringify(done.body));
      assert.equal(done.body.returned, 10);
      assert.equal(done.body.replayed, undefined);
      const again = await post('drain', request);
      assert.deepEqual([again.status, again.body.replayed], [200, true]);
      assert.equal((await livePartitions('con-api')).length, 3);
    });

    it('reconciles a SKU and reports what it checked', async () => {
      const { status: code, body } = await post('reconcile', { skuIds: ['con-api'] });
      assert.equal(code, 200, JSON.stringify(body));
      assert.equal(body.skusChecked, 1);
      const repair = await post('reconcile', { skuIds: ['con-api'], repair: true });
      assert.deepEqual([repair.status, repair.body.error.field], [400, 'request_id']);
    });

    it('shows the events published on the exchange, each id once, newest first', async () => {
      const connection = await amqp.connect(config.amqpUrl);
      try {
        await waitFor(() => web.events.state().connected, 10_000, 'the console to listen to the events exchange');
        const channel = await connection.createConfirmChannel();
        const event = (id: string) => ({ id, type: 'sku.sold_out', sku: 'con-api', occurredAt: new Date().toISOString(), data: { base: 0, pool: 0 } });
        for (const e of [event('sku.sold_out:con-api:a'), event('sku.sold_out:con-api:b'), event('sku.sold_out:con-api:a')]) {
          channel.publish(config.mqEventsExchange, e.type, Buffer.from(JSON.stringify(e)));
        }
        channel.publish(config.mqEventsExchange, 'junk', Buffer.from('not an event'));
        await channel.waitForConfirms();
        await waitFor(async () => (await call('overview')).body.events.recent.length >= 2, 5000, 'the events in the overview');
        const { body } = await call('overview');
        assert.equal(body.events.connected, true);
        assert.deepEqual(
          body.events.recent.map((e: { id: string }) => e.id),
          ['sku.sold_out:con-api:a', 'sku.sold_out:con-api:b'],
        );
      } finally {
        await connection.close();
      }
    });
  });

  describe('in a browser', () => {
    let browser: Browser;
    let page: Page;
    const apiCalls: string[] = [];

    before(async function () {
      if (!existsSync(CHROMIUM)) throw new Error(`no browser at ${CHROMIUM}: scripts/setup.sh installs Debian's chromium (or set CHROMIUM_PATH)`);
      await stocked('con-web', 200, 80, 4);
      browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: process.getuid?.() === 0 ? ['--no-sandbox'] : [] });
      page = await browser.newPage();
      page.on('request', (request) => {
        if (request.url().includes('/console/api/')) apiCalls.push(request.url());
      });
    });
    after(async () => {
      await browser?.close();
    });

    const skuButton = (sku: string) => page.locator('#skus tbody button', { hasText: sku });
    const partitionRows = () => page.locator('#partitions tbody tr');
    /** Waits until the page lists exactly the SKU's live partitions (by id), `n` of them: not a set caught mid-rebalance. */
    const rowsShown = (n: number, sku = 'con-web') =>
      waitFor(
        async () => {
          const shown = (await partitionRows().locator('td:first-child').allTextContents()).sort();
          const live = (await livePartitions(sku)).map((p) => p.partitionId).sort();
          return shown.length === n && JSON.stringify(shown) === JSON.stringify(live);
        },
        5000,
        `the ${n} live partitions on the page`,
      );
    /** Waits for the outcome of an action; with its request id, for that action's (an earlier action's outcome may still be shown). */
    const outcome = (state: 'ok' | 'error', requestId?: string) =>
      page.locator(`#result[data-state="${state}"]`, requestId === undefined ? {} : { hasText: requestId }).waitFor();

    it('shows nothing without a token, and nothing with a wrong one', async () => {
      await page.goto(base);
      await page.waitForSelector('#token-form:not([hidden])');
      assert.equal(await page.locator('#data').isHidden(), true);
      assert.equal(await page.locator('#data td').count(), 0);
      assert.deepEqual(apiCalls, [], 'the page asks the API nothing without a token');
      assert.doesNotMatch(await page.content(), /con-web/);

      await page.fill('#token', 'not-the-token');
      await page.click('#token-form button');
      await page.locator('#status', { hasText: 'refused' }).waitFor();
      assert.equal(await page.locator('#data').isHidden(), true);
      assert.equal(await page.locator('#data td').count(), 0);
      assert.equal(await page.evaluate('sessionStorage.length'), 0);
    });

    it('with the token shows the SKUs, and a SKU\'s partitions as ListPartitions lists them', async () => {
      await page.fill('#token', config.adminToken);
      await page.click('#token-form button');
      await skuButton('con-web').waitFor();
      assert.equal(await page.locator('#token-form').isHidden(), true);
      assert.equal(await page.locator('#health-status').textContent(), 'SERVING');
      assert.equal(await page.evaluate('document.cookie'), '', 'no cookie holds the token');
      await skuButton('con-web').click();
      await rowsShown(4);
      const shown = await page.locator('#partitions tbody tr td:first-child').allTextContents();
      assert.deepEqual(shown.sort(), (await livePartitions('con-web')).map((p) => p.partitionId).sort());
      assert.equal(await page.inputValue('#target-pool'), '80');
      assert.equal(await page.inputValue('#partition-count'), '4');
    });

    it('shows the field the server refused, and sends nothing when the confirmation is cancelled', async () => {
      await page.fill('#partition-count', '300');
      await page.click('#rebalance');
      await page.waitForSelector('#confirm[open]');
      assert.match((await page.locator('#confirm-request').textContent()) ?? '', /^console-[0-9a-f]{16}$/);
      await page.click('#confirm-ok');
      await outcome('error');
      assert.match((await page.locator('#result').textContent()) ?? '', /partition_count: must be a whole number from 0 to 256, got 300/);
      assert.equal(await page.getAttribute('#partition-count', 'aria-invalid'), 'true');

      await page.fill('#partition-count', '8');
      await page.click('#rebalance');
      await page.waitForSelector('#confirm[open]');
      await page.click('#confirm-cancel');
      await page.waitForSelector('#confirm', { state: 'hidden' });
      assert.equal((await livePartitions('con-web')).length, 4);
    });

    it('rebalances after the confirmation: ListPartitions sees the new partitions', async () => {
      await page.fill('#target-pool', '120');
      await page.fill('#partition-count', '6');
      await page.click('#rebalance');
      await page.waitForSelector('#confirm[open]');
      const requestId = (await page.locator('#confirm-request').textContent()) ?? '';
      assert.match(await page.locator('#confirm-text').textContent() ?? '', /120 units in 6 partitions/);
      await page.click('#confirm-ok');
      await outcome('ok', requestId);
      assert.match((await page.locator('#result').textContent()) ?? '', new RegExp(`request ${requestId}\\): done`));
      const after = await livePartitions('con-web');
      assert.equal(after.length, 6);
      assert.equal(after.reduce((n, p) => n + p.avail, 0), 120);
      await rowsShown(6);
    });

    it('drains a partition after the confirmation', async () => {
      const first = partitionRows().first();
      const partitionId = (await first.locator('td').first().textContent()) ?? '';
      await first.locator('button', { hasText: 'Drain' }).click();
      await page.waitForSelector('#confirm[open]');
      assert.match((await page.locator('#confirm-title').textContent()) ?? '', new RegExp(partitionId));
      const requestId = (await page.locator('#confirm-request').textContent()) ?? '';
      assert.ok(requestId.length > 0, 'the dialog shows the request id');
      await page.click('#confirm-ok');
      // The rebalance's "done" is still on the page until the drain answers: wait for the drain's own.
      await outcome('ok', requestId);
      const after = await livePartitions('con-web');
      assert.equal(after.length, 5);
      assert.ok(!after.some((p) => p.partitionId === partitionId));
    });

    it('keeps the token for the tab only until it is forgotten', async () => {
      await page.reload();
      await skuButton('con-web').waitFor();
      await page.click('#forget');
      assert.equal(await page.locator('#data').isHidden(), true);
      assert.equal(await page.locator('#data td').count(), 0);
      assert.equal(await page.evaluate('sessionStorage.length'), 0);
    });
  });
});
