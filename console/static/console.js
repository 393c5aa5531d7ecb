// @ts-check
/**
 * The operator's web console (README "Web console"): reads /console/api/ every REFRESH_MS with the
 * admin token from sessionStorage (sent as a header, never a cookie), renders with textContent
 * only, and runs rebalance, drain and reconcile after a confirmation, each under a request id made
 * here and shown, so that sending it again is safe. Plain browser JavaScript: no build step.
 */

const TOKEN_KEY = 'inventory-console-token';
const REFRESH_MS = 1500;

/** @param {string} id */
function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no #${id}`);
  return el;
}
/** @param {string} id */
const input = (id) => /** @type {HTMLInputElement} */ ($(id));
/** @param {string} id */
const tbody = (id) => /** @type {HTMLTableSectionElement} */ ($(id).querySelector('tbody'));

/** An error the API answered: its JSON error, with the field it names when the input was bad. */
class ApiError extends Error {
  /** @param {number} status @param {{code?: string, reason?: string, field?: string, message?: string}} error */
  constructor(status, error) {
    super(error.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = error.code;
    this.field = error.field;
  }
}

let token = sessionStorage.getItem(TOKEN_KEY) ?? '';
let selected = skuFromHash();
/** @type {ReturnType<typeof setTimeout> | undefined} */
let timer;
let refreshing = false;
let again = false;
/** The last action sent, to send again under the same request id. @type {{name: string, body: object, label: string} | undefined} */
let lastAction;

/** @param {string} path @param {RequestInit} [init] */
async function api(path, init = {}) {
  const res = await fetch(`api/${path}`, { ...init, headers: { ...init.headers, authorization: `Bearer ${token}` }, cache: 'no-store' });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, body.error ?? {});
  return body;
}

function skuFromHash() {
  const match = /^#sku=(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]) : '';
}

/** Hides and empties every data section, so that nothing is left on the page, and asks for a token. @param {string} message */
function lock(message) {
  token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(timer);
  $('data').hidden = true;
  for (const body of document.querySelectorAll('#data tbody')) body.replaceChildren();
  $('degraded').replaceChildren();
  for (const id of ['health-status', 'ledger', 'skus-note', 'partitions-note', 'events-state', 'result', 'sku-name']) $(id).textContent = '';
  $('token-form').hidden = false;
  $('forget').hidden = true;
  $('status').textContent = message;
}

function unlock() {
  $('token-form').hidden = true;
  $('forget').hidden = false;
  $('data').hidden = false;
  void refresh();
}

/** Reads and renders everything, then again in REFRESH_MS; a call while one runs makes it run once more at its end. */
async function refresh() {
  if (refreshing) {
    again = true;
    return;
  }
  clearTimeout(timer);
  if (!token) return;
  refreshing = true;
  try {
    const q = encodeURIComponent(input('filter').value.trim());
    const [overview, partitions] = await Promise.all([
      api(`overview?q=${q}`),
      selected ? api(`partitions?sku=${encodeURIComponent(selected)}`).catch((err) => ({ failed: err })) : undefined,
    ]);
    if (!token) return;
    renderOverview(overview);
    renderPartitions(partitions);
    $('status').textContent = `Updated ${new Date(overview.at).toLocaleTimeString()}`;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      lock('The server refused that token.');
      return;
    }
    $('status').textContent = `Could not refresh: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    refreshing = false;
  }
  if (!token) return;
  if (again) {
    again = false;
    return refresh();
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

/** @param {unknown} value @param {string} [className] */
function cell(value, className) {
  const td = document.createElement('td');
  td.textContent = value === undefined || value === null ? '' : String(value);
  if (className) td.className = className;
  return td;
}
/** @param {unknown} value */
const num = (value) => cell(Number(value ?? 0), 'num');
/** @param {Node[]} cells */
function row(...cells) {
  const tr = document.createElement('tr');
  tr.append(...cells);
  return tr;
}
/** @param {string} text @param {() => void} onClick */
function button(text, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.addEventListener('click', onClick);
  return b;
}
/** @param {number} ms */
function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
}

function renderOverview(o) {
  const health = $('health-status');
  health.textContent = o.health.status;
  health.dataset.state = o.health.status;
  $('degraded').replaceChildren(...o.health.degraded.map((/** @type {string} */ line) => Object.assign(document.createElement('li'), { textContent: line })));
  tbody('checks').replaceChildren(
    ...Object.entries(o.health.checks).map(([name, check]) => row(cell(name), cell(check.up ? 'up' : 'down', check.up ? 'ok' : 'bad'), cell(ago(check.since)))),
  );
  tbody('breakers').replaceChildren(
    ...o.breakers.map((b) => row(cell(b.dependency), cell(b.node), cell(b.state, b.state === 'closed' ? 'ok' : 'bad'))),
  );
  $('ledger').textContent = 'error' in o.ledger
    ? `unknown (${o.ledger.error})`
    : `${o.ledger.waiting} records waiting for MySQL${o.ledger.waiting > 0 ? `, the oldest ${(o.ledger.oldestAgeMs / 1000).toFixed(1)} s old` : ''}`;
  renderSkus(o.skus);
  renderEvents(o.events);
}

function renderSkus(skus) {
  const note = $('skus-note');
  if ('error' in skus) {
    note.textContent = `The SKUs could not be read: ${skus.error}`;
    return;
  }
  const notes = [];
  if (skus.source === 'registry') notes.push('MySQL does not answer: these are the SKUs the registry knows.');
  if (skus.stock.length >= skus.limit) notes.push(`The first ${skus.limit} SKUs; type the start of an id to find others.`);
  if (skus.stock.length === 0) notes.push('No SKU.');
  note.textContent = notes.join(' ');
  tbody('skus').replaceChildren(
    ...skus.stock.map((s) => {
      const tr = row(
        cell(''),
        num(s.onHand), num(s.base), num(s.pool), num(s.reserved), num(s.committed), num(s.shortfall), num(s.sellable), num(s.partitions),
      );
      tr.firstElementChild?.append(button(s.skuId, () => select(s.skuId, s)));
      if (s.skuId === selected) tr.className = 'selected';
      if (s.stale) tr.title = 'MySQL does not answer: totals as last read';
      return tr;
    }),
  );
}

/** @param {string} sku @param {{pool?: number, partitions?: number}} [stock] */
function select(sku, stock) {
  selected = sku;
  history.replaceState(null, '', `#sku=${encodeURIComponent(sku)}`);
  input('target-pool').value = String(stock?.pool ?? 0);
  input('partition-count').value = String(stock?.partitions ?? 0);
  void refresh();
}

function renderPartitions(answer) {
  $('sku-section').hidden = !selected;
  if (!selected) return;
  $('sku-name').textContent = selected;
  const note = $('partitions-note');
  if (answer?.failed) {
    note.textContent = `The partitions could not be read: ${answer.failed.message}`;
    return;
  }
  const partitions = answer?.partitions ?? [];
  note.textContent = partitions.length === 0 ? 'No live partition: everything is in base, or sold.' : '';
  tbody('partitions').replaceChildren(
    ...partitions.map((p) => {
      const actions = cell('');
      actions.append(button('Drain…', () => drain(p)));
      const state = String(p.state ?? '').replace('PARTITION_STATE_', '').toLowerCase();
      return row(cell(p.partitionId), cell(p.redisNode), cell(state), num(p.avail), num(p.capacity), num(p.epoch), actions);
    }),
  );
}

function renderEvents(events) {
  $('events-state').textContent = events.connected
    ? `Events published on ${events.exchange} since this server started listening (newest first)${events.recent.length === 0 ? ': none yet.' : '.'}`
    : `Not listening to ${events.exchange} now${events.error ? ` (${events.error})` : ''}; reconnecting.`;
  tbody('events').replaceChildren(
    ...events.recent.map((e) =>
      row(cell(new Date(e.occurredAt).toLocaleTimeString()), cell(e.type), cell(e.sku ?? '(several)'), cell(e.id), cell(JSON.stringify(e.data), 'data')),
    ),
  );
}

function newRequestId() {
  const bytes = crypto.getRandomValues(new Uint8Array(8));
  return `console-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

/** Asks in the page's own dialog; resolves true when confirmed. @param {string} title @param {string} text @param {string} requestId */
function confirmed(title, text, requestId) {
  const dialog = /** @type {HTMLDialogElement} */ ($('confirm'));
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-request').textContent = requestId;
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }));
}

/** Sends an action and shows its outcome; failures other than bad input offer to send it again. @param {{name: string, body: object, label: string}} action */
async function send(action) {
  lastAction = action;
  $('result-section').hidden = false;
  $('retry').hidden = true;
  $('discrepancies').hidden = true;
  for (const el of document.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  const result = $('result');
  result.dataset.state = 'pending';
  result.textContent = `${action.label}: sending…`;
  try {
    const answer = await api(action.name, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(action.body) });
    result.dataset.state = 'ok';
    result.textContent = `${action.label}: done${answer.replayed ? ' (replayed: the server had done it already)' : ''}.`;
    if (action.name === 'reconcile') showDiscrepancies(answer);
    void refresh();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return lock('The server refused that token.');
    result.dataset.state = 'error';
    result.textContent = `${action.label}: ${err instanceof Error ? err.message : String(err)}`;
    if (err instanceof ApiError && err.field) document.querySelector(`[data-field="${CSS.escape(err.field)}"]`)?.setAttribute('aria-invalid', 'true');
    $('retry').hidden = err instanceof ApiError && err.status < 500;
  }
}

function showDiscrepancies(answer) {
  const found = answer.discrepancies ?? [];
  $('result').textContent += ` ${answer.skusChecked ?? 0} SKU(s), ${answer.partitionsChecked ?? 0} partition(s) checked: ${found.length === 0 ? 'Redis and MySQL agree.' : `${found.length} difference(s).`}`;
  $('discrepancies').hidden = found.length === 0;
  tbody('discrepancies').replaceChildren(
    ...found.map((d) => row(cell(d.kind), cell(d.partitionId || d.orderId || ''), num(d.expected), num(d.actual), cell(d.repaired ? 'yes' : 'no'), cell(d.detail))),
  );
}

/** @param {string} title @param {string} text @param {string} name @param {object} body */
async function confirmAndSend(title, text, name, body) {
  const requestId = newRequestId();
  if (!(await confirmed(title, text, requestId))) return;
  await send({ name, body: { ...body, requestId }, label: `${title} (request ${requestId})` });
}

/** @param {{partitionId: string, avail?: number, redisNode?: string}} p */
function drain(p) {
  void confirmAndSend(
    `Drain ${p.partitionId}`,
    `Take partition ${p.partitionId} of ${selected} (on ${p.redisNode}) out of sale: its ${p.avail ?? 0} units go back to base.`,
    'drain',
    { skuId: selected, partitionId: p.partitionId },
  );
}

function rebalance() {
  const target = input('target-pool').value.trim();
  const count = input('partition-count').value.trim();
  if (target === '' || count === '') {
    $('result-section').hidden = false;
    $('result').textContent = 'Rebalance: give a target pool and a number of partitions.';
    return;
  }
  // Sent as typed: the server checks them (whole numbers, within bounds) and names a bad one.
  void confirmAndSend(
    `Rebalance ${selected}`,
    `Make the pool of ${selected} ${target} units in ${count} partitions: units come from base or go back to it, partitions are carved or drained.`,
    'rebalance',
    { skuId: selected, targetPool: Number(target), partitionCount: Number(count) },
  );
}

function wire() {
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    token = input('token').value.trim();
    input('token').value = '';
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('status').textContent = 'Checking the token…';
    unlock();
  });
  $('forget').addEventListener('click', () => lock('Token forgotten.'));
  $('filter').addEventListener('input', () => void refresh());
  $('rebalance-form').addEventListener('submit', (event) => {
    event.preventDefault();
    rebalance();
  });
  $('reconcile').addEventListener('click', () => void send({ name: 'reconcile', body: { skuIds: [selected] }, label: `Reconcile ${selected}` }));
  $('repair').addEventListener('click', () =>
    void confirmAndSend(`Reconcile and repair ${selected}`, `Compare ${selected} in Redis and MySQL and fix what can be fixed safely.`, 'reconcile', { skuIds: [selected], repair: true }),
  );
  $('retry').addEventListener('click', () => lastAction && void send(lastAction));
  const dialog = /** @type {HTMLDialogElement} */ ($('confirm'));
  $('confirm-ok').addEventListener('click', () => dialog.close('ok'));
  $('confirm-cancel').addEventListener('click', () => dialog.close('cancel'));
  window.addEventListener('hashchange', () => {
    selected = skuFromHash();
    void refresh();
  });
}

wire();
if (token) unlock();
else lock('Enter the admin token (ADMIN_TOKEN) to see the inventory.');
