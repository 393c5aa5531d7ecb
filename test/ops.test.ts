import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { uniqueName } from './helpers/config';
import { InventoryFixture, startInventory } from './helpers/inventory';
import { deleteMqNames, mqNames } from './helpers/rabbitmq';
import { spawnServerBeside } from './helpers/server-process';

/**
 * The dashboard (ops/grafana) and the alert rules (ops/prometheus) name only metrics and labels
 * the server and the stock consumer export: a renamed metric or a mistyped label would otherwise
 * leave an empty panel or an alert that can never fire, and nobody would notice until an outage.
 */
const OPS = path.resolve(__dirname, '..', '..', 'ops');
/** Labels Prometheus adds itself (instance, job) or that histogram series carry (le). */
const SCRAPE_LABELS = ['instance', 'job', 'le'];

interface Dashboard {
  panels: Array<{ id: number; type: string; title: string; gridPos: { x: number; w: number }; targets?: Array<{ expr: string }> }>;
  templating: { list: Array<{ name: string; query: string | { query: string } }> };
}
interface RuleFile {
  groups: Array<{ name: string; rules: Array<{ alert: string; expr: string; for?: string; labels?: { severity?: string }; annotations?: { summary?: string } }> }>;
}

const dashboard = JSON.parse(readFileSync(path.join(OPS, 'grafana', 'inventory-core.json'), 'utf8')) as Dashboard;
const rules = yaml.load(readFileSync(path.join(OPS, 'prometheus', 'alerts.yml'), 'utf8')) as RuleFile;

function dashboardExprs(): string[] {
  const panels = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  const variables = dashboard.templating.list.map((v) => (typeof v.query === 'string' ? v.query : v.query.query)).filter((q) => q.includes('inventory_'));
  return [...panels, ...variables];
}

function ruleExprs(): string[] {
  return rules.groups.flatMap((g) => g.rules.map((r) => r.expr));
}

/** Metric names an expression reads, histogram suffixes kept. */
function metricsIn(expr: string): string[] {
  return [...new Set(expr.match(/\binventory_[a-z0-9_]+/g) ?? [])];
}

/** Label names an expression uses: in selectors `{a="..", b=~".."}` and in `by (...)` / `without (...)`. */
function labelsIn(expr: string): string[] {
  const selectors = [...expr.matchAll(/\{([^}]*)\}/g)].flatMap(([, body]) => [...body.matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map((m) => m[1]));
  const groupings = [...expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap(([, body]) => body.split(',').map((l) => l.trim()).filter(Boolean));
  return [...new Set([...selectors, ...groupings])];
}

describe('dashboards and alerts', function () {
  this.timeout(120_000);
  const name = uniqueName('ops');
  const queues = mqNames(name);
  let inv: InventoryFixture;
  /** Every metric the server exports, with its label names (histograms under each series name). */
  let exported: Map<string, readonly string[]>;

  before(async () => {
    // The consumer in the server's process, so its metrics are in the same registry.
    inv = await startInventory('ops', { MQ_CONSUMER: 'inline', ...queues });
    await inv.stock('ops-hot', 50, 4);
    await inv.reserve(`${name}-o1`, [['ops-hot', 1]]);
    exported = new Map();
    for (const metric of inv.metrics.registry.getMetricsAsArray() as unknown as Array<{ name: string; labelNames?: readonly string[]; type?: string }>) {
      const labels = metric.labelNames ?? [];
      exported.set(metric.name, labels);
      if (metric.type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.set(metric.name + suffix, labels);
    }
  });
  after(async () => {
    await inv.close();
    await deleteMqNames(inv.config.amqpUrl, queues);
  });

  function checkNamesAndLabels(exprs: string[]): void {
    assert.ok(exprs.length > 0);
    for (const expr of exprs) {
      const metrics = metricsIn(expr);
      assert.ok(metrics.length > 0, `no inventory metric in: ${expr}`);
      for (const m of metrics) assert.ok(exported.has(m), `${m} is not exported by the server (in: ${expr})`);
      const known = new Set([...SCRAPE_LABELS, ...metrics.flatMap((m) => exported.get(m) ?? [])]);
      for (const label of labelsIn(expr)) assert.ok(known.has(label), `label ${label} is on none of ${metrics.join(', ')} (in: ${expr})`);
    }
  }

  it('the Grafana dashboard names only exported metrics and labels, and is well formed', () => {
    checkNamesAndLabels(dashboardExprs());
    const ids = dashboard.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    for (const p of dashboard.panels) assert.ok(p.gridPos.x + p.gridPos.w <= 24, `panel "${p.title}" fits the 24-column grid`);
    const shown = new Set(dashboardExprs().flatMap(metricsIn));
    for (const wanted of ['inventory_reserve_total', 'inventory_rpc_duration_seconds_bucket', 'inventory_hot_sku_sellable_units', 'inventory_hot_sku_partitions', 'inventory_breaker_state', 'inventory_ledger_lag_records', 'inventory_ledger_oldest_age_seconds', 'inventory_redis_memory_ratio', 'inventory_stock_queue_messages', 'inventory_stock_messages_dead_lettered_total']) {
      assert.ok(shown.has(wanted), `the dashboard shows ${wanted}`);
    }
  });

  it('the alert rules name only exported metrics and labels, each with a severity and a summary', () => {
    checkNamesAndLabels(ruleExprs());
    const alerts = rules.groups.flatMap((g) => g.rules);
    assert.equal(new Set(alerts.map((r) => r.alert)).size, alerts.length, 'alert names are unique');
    for (const r of alerts) {
      assert.match(r.alert, /^Inventory[A-Za-z]+$/);
      assert.ok(['warning', 'critical'].includes(r.labels?.severity ?? ''), `${r.alert} has a severity`);
      assert.ok(r.annotations?.summary, `${r.alert} has a summary`);
      if (r.for !== undefined) assert.match(r.for, /^\d+[smh]$/, `${r.alert}: for`);
    }
  });

  it('GET /metrics carries every metric they name, the hot SKU with its partitions and sellable units', async () => {
    const text = await (await fetch(`http://127.0.0.1:${inv.server.app.metricsPort}/metrics`)).text();
    const typed = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap(([, n, type]) => (type === 'histogram' ? [n, `${n}_bucket`, `${n}_sum`, `${n}_count`] : [n])));
    for (const m of new Set([...dashboardExprs(), ...ruleExprs()].flatMap(metricsIn))) assert.ok(typed.has(m), `${m} in /metrics`);
    assert.match(text, /^inventory_hot_sku_sellable_units\{sku="ops-hot"\} 49$/m);
    assert.match(text, /^inventory_hot_sku_partitions\{sku="ops-hot"\} 4$/m);
    assert.match(text, /^inventory_hot_sku_reserve_rate\{sku="ops-hot"\} [0-9.e-]+$/m);
    assert.match(text, /^inventory_stock_queue_messages\{queue="work"\} 0$/m);
    assert.match(text, /^inventory_stock_queue_messages\{queue="dead_letter"\} 0$/m);
    assert.match(text, /^inventory_health_status\{service="overall"\} 2$/m);
  });

  it('a stock consumer in its own process serves its metrics on MQ_METRICS_PORT', async () => {
    const server = await spawnServerBeside(inv.config, { MQ_CONSUMER: 'process', ...queues, AMQP_URL: inv.config.amqpUrl });
    try {
      const line = await server.waitForLine((l) => l.msg === 'stock consumer: metrics served', 60_000);
      let text = '';
      for (let i = 0; i < 50 && !/inventory_stock_queue_messages\{queue="work"\} \d/.test(text); i++) {
        text = await (await fetch(`http://127.0.0.1:${String(line.metricsPort)}/metrics`)).text();
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.match(text, /^inventory_stock_queue_messages\{queue="work"\} \d+$/m);
      assert.match(text, /^inventory_stock_consumer_state\{state="consuming"\} 1$/m);
    } finally {
      await server.stop();
    }
  });
});
