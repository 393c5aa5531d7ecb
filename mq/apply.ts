import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { ShipCode } from '../allocator/codes';
import { RedisGateway } from '../allocator/gateway';
import { StockOperator } from '../admin/operator';
import { LossPayload, applyOnHandChange } from '../admin/stock-changes';
import { OperatorRegistry } from '../admin/types';
import { Logger } from '../kernel/logger';
import { openIntent } from '../store/intents';
import { transaction } from '../store/mysql';
import { StockRow, lockExistingStock, lockStock } from '../store/stock';
import { MessageRecord, advanceSequence, claimMessage, settleMessage } from '../store/stock-messages';
import { shipArchived } from './ship-archived';
import { ApplyOutcome, StockApplier, StockUpdate } from './types';

export interface StockMessageApplierDeps {
  readonly pool: Pool;
  readonly operator: StockOperator;
  readonly gateway: RedisGateway;
  readonly registry: Pick<OperatorRegistry, 'putSku' | 'getSku'>;
  /** Says when a redelivery finishes what an earlier one began. */
  readonly logger: Logger;
}

/** Kinds that may name a SKU the inventory does not know yet: it is created (and registered) like SetStock would. */
const CREATES_SKU = new Set(['RECEIPT', 'RETURN', 'COUNT']);

/** What the MySQL transaction of a message decided: an outcome, or that its Redis half is to do. */
type Step = { readonly outcome: ApplyOutcome } | { readonly redis: 'shrink' | 'ship' };

/**
 * What a warehouse's stock message means to the stock, applied exactly once by its message id.
 *
 * One MySQL transaction claims the message (stock_messages, a unique key: a redelivery finds its row
 * and changes nothing), takes its place in the SKU's sequence (an older one is stale and skipped),
 * and applies what MySQL alone can: a receipt or a return into base, a loss out of base. What needs
 * Redis is recorded in the same transaction and done after it, safely again on a redelivery:
 *   - a loss that base cannot cover shrinks the pool: a `loss` intent (admin/stock-changes.ts),
 *     which settles the message when it closes;
 *   - a shipment moves a paid order's committed units out (lua/order-ship-3.lua, idempotent by
 *     message id; its ledger record carries the units to MySQL), then the message is settled; an
 *     order past its retention ships in MySQL alone, from its archived record (ship-archived.ts).
 * Until then the message stays `pending`: the consumer acknowledges only what returned, so a crash
 * redelivers it and this finishes what the first delivery began.
 */
export class StockMessageApplier implements StockApplier {
  private readonly knownSkus = new Set<string>();

  constructor(private readonly deps: StockMessageApplierDeps) {}

  async apply(update: StockUpdate): Promise<ApplyOutcome> {
    if (CREATES_SKU.has(update.kind)) await this.registerIfNew(update.sku);
    const step = await transaction(this.deps.pool, (conn) => this.claimAndApply(conn, update));
    if ('outcome' in step) return step.outcome;
    if (step.redis === 'ship') return this.ship(update);
    await this.deps.operator.finishIntent(intentIdOf(update));
    return { kind: 'applied' };
  }

  /** MySQL and Redis answer (after a transient failure). */
  async ready(): Promise<boolean> {
    try {
      await this.deps.pool.query('SELECT 1');
      await Promise.all(this.deps.gateway.shards.clients.map((c) => c.ping()));
      return true;
    } catch {
      return false;
    }
  }

  private async claimAndApply(conn: PoolConnection, u: StockUpdate): Promise<Step> {
    const claim = await claimMessage(conn, record(u));
    if (claim.kind === 'seen') {
      if (claim.outcome === 'applied') return { outcome: { kind: 'skipped', why: 'duplicate' } };
      if (claim.outcome === 'stale') return { outcome: { kind: 'skipped', why: 'stale' } };
      if (claim.outcome === 'dead') return { outcome: { kind: 'dead', reason: claim.detail } };
      // Begun by an earlier delivery (its process died, or Redis failed, half way): finish its Redis half.
      this.deps.logger.info({ messageId: u.messageId, sku: u.sku, kind: u.kind }, 'stock message: finishing what an earlier delivery began');
      return { redis: u.kind === 'SHIPMENT' ? 'ship' : 'shrink' };
    }
    const row = await this.lockSku(conn, u);
    if (!row) return this.settle(conn, u, { kind: 'dead', reason: `UNKNOWN_SKU: sku ${u.sku} is not known to the inventory` });
    if (!(await advanceSequence(conn, u.sku, u.sequence))) return this.settle(conn, u, { kind: 'skipped', why: 'stale' });
    if (u.kind === 'SHIPMENT') return this.pending(conn, u, 'ship');

    const change = u.kind === 'COUNT' ? u.quantity - row.onHand : u.kind === 'RECEIPT' || u.kind === 'RETURN' ? u.quantity : -u.quantity;
    const eventBase = intentIdOf(u);
    const fromPool = await applyOnHandChange(conn, row, change, eventBase, u.kind.toLowerCase(), reasonOf(u));
    if (fromPool > 0) {
      const payload: LossPayload = { units: fromPool, reason: reasonOf(u), eventBase, messageId: u.messageId };
      await openIntent(conn, eventBase, 'loss', u.sku, payload);
      return this.pending(conn, u, 'shrink');
    }
    // The row was claimed as applied: it commits with the change.
    return { outcome: { kind: 'applied', detail: change === 0 ? 'no change' : `on_hand ${change > 0 ? '+' : ''}${change}` } };
  }

  /** Marks the message pending until its Redis half is done (a redelivery then finishes it). */
  private async pending(conn: PoolConnection, u: StockUpdate, redis: 'shrink' | 'ship'): Promise<Step> {
    await settleMessage(conn, u.messageId, 'pending');
    return { redis };
  }

  /** The SKU's row, locked; created for kinds that may bring a new SKU, undefined for the others when it is unknown. */
  private async lockSku(conn: PoolConnection, u: StockUpdate): Promise<StockRow | undefined> {
    const row = await lockExistingStock(conn, u.sku);
    return row ?? (CREATES_SKU.has(u.kind) ? lockStock(conn, u.sku) : undefined);
  }

  private async settle(conn: PoolConnection, u: StockUpdate, outcome: ApplyOutcome): Promise<Step> {
    const detail = outcome.kind === 'dead' ? outcome.reason : outcome.kind === 'applied' ? outcome.detail : '';
    await settleMessage(conn, u.messageId, outcome.kind === 'skipped' ? 'stale' : outcome.kind, detail ?? '');
    return { outcome };
  }

  /** The Redis half of a SHIPMENT: order-ship, then the message settled with what it did. */
  private async ship(u: StockUpdate): Promise<ApplyOutcome> {
    const res = await this.deps.gateway.ship(u.orderId!, u.messageId, u.sku, u.quantity);
    // An order Redis no longer has (or is about to forget): its record is in MySQL's archive.
    const retentionEnded = res.code === ShipCode.RetentionEnded;
    if (retentionEnded || (res.code === ShipCode.NotConfirmed && !res.state)) {
      const archived = await shipArchived(this.deps.pool, u, retentionEnded);
      if (archived) return archived;
    }
    let outcome: ApplyOutcome;
    if (res.code === ShipCode.Shipped || res.code === ShipCode.Replayed) outcome = { kind: 'applied', detail: `${res.units} units of order ${u.orderId} shipped` };
    else if (res.code === ShipCode.NotConfirmed) {
      outcome = res.state
        ? { kind: 'dead', reason: `ORDER_NOT_PAID: order ${u.orderId} is ${res.state}, only a CONFIRMED order ships` }
        : { kind: 'dead', reason: `UNKNOWN_ORDER: no order ${u.orderId}` };
    } else if (res.code === ShipCode.NotInOrder) outcome = { kind: 'dead', reason: `UNKNOWN_ITEM: sku ${u.sku} is not part of order ${u.orderId}` };
    else outcome = { kind: 'dead', reason: `NOTHING_COMMITTED: order ${u.orderId} has no committed units of sku ${u.sku} left` };
    await transaction(this.deps.pool, (conn) => this.settle(conn, u, outcome));
    return outcome;
  }

  /** A SKU first seen in a message is registered, so every server knows it before anything sells. */
  private async registerIfNew(sku: string): Promise<void> {
    if (this.knownSkus.has(sku)) return;
    const [rows] = await this.deps.pool.query<RowDataPacket[]>('SELECT 1 FROM skus WHERE sku_id = ?', [sku]);
    if (rows.length === 0) {
      const limit = (await this.deps.registry.getSku(sku))?.perUserLimit ?? 0;
      await this.deps.registry.putSku(sku, { perUserLimit: limit });
    }
    this.knownSkus.add(sku);
  }
}

/** The message's intent id and the base of its ledger event ids. */
function intentIdOf(u: StockUpdate): string {
  return `msg:${u.messageId}`;
}

/** The ledger's reason of the message's movements (at most 256 characters, the column's). */
function reasonOf(u: StockUpdate): string {
  return `${u.kind.toLowerCase()} message ${u.messageId}${u.warehouseId ? ` from warehouse ${u.warehouseId}` : ''}`.slice(0, 256);
}

function record(u: StockUpdate): MessageRecord {
  return {
    messageId: u.messageId,
    sku: u.sku,
    kind: u.kind,
    quantity: u.quantity,
    sequence: u.sequence,
    warehouseId: u.warehouseId,
    orderId: u.orderId,
    occurredAt: u.occurredAt,
  };
}
