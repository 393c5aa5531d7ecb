import { DependencyUnavailable } from '../kernel/dependency';
import { Logger } from '../kernel/logger';
import { RedisGateway } from './gateway';
import { ReservationService, SweepOutcome } from './reservations';

export interface SweeperOptions {
  /** Pending Reserves older than this are rolled back. */
  readonly recoveryGraceMs: number;
  /** A recorded release still unapplied after this long is re-applied (its process died). Default 5000. */
  readonly reapplyAfterMs?: number;
  /** Entries read per page of a shard index. Default 100. */
  readonly batch?: number;
  /**
   * Pages read per shard and index per round. Default 10. Bounds one round's work (after a crash
   * or an outage there may be many due entries); what is left waits for the next round.
   */
  readonly pagesPerRound?: number;
}

/**
 * The background worker every server runs: expires unpaid holds that are due, rolls back carts
 * whose process died half way, and finishes releases a dead process recorded but did not apply.
 * Several servers may sweep the same shards at once: each step is decided atomically in Redis
 * (exactly one process expires a given hold), and every step after that is idempotent.
 * The server clock only picks candidates; the Redis clock decides.
 */
export class Sweeper {
  constructor(
    private readonly gateway: RedisGateway,
    private readonly reservations: ReservationService,
    private readonly options: SweeperOptions,
    private readonly logger: Logger,
    private readonly onSwept: (kind: 'expired' | 'recovered' | 'reapplied', count: number) => void = () => {},
  ) {}

  /** One full pass over every shard; the server runs it periodically (server/periodic.ts), tests on demand. */
  async sweep(): Promise<void> {
    const shardCount = this.gateway.shards.keys.shardCount;
    const now = Date.now();
    let unreachable: DependencyUnavailable | undefined;
    for (let shard = 0; shard < shardCount; shard++) {
      if (!this.gateway.shards.reachable(shard)) continue; // its node is down: the others go on
      try {
        await this.sweepShard(shard, now);
      } catch (err) {
        // A node that is down stops its own shards' sweep, not the others'.
        if (!(err instanceof DependencyUnavailable)) throw err;
        unreachable = err;
      }
    }
    if (unreachable) this.logger.warn({ err: unreachable }, 'sweep: shards on an unreachable Redis node skipped this round');
  }

  private async sweepShard(shard: number, now: number): Promise<void> {
    // A second of slack: the Redis clock may run ahead of ours; the script re-checks anyway.
    const expired = await this.sweepIndex(shard, 'expiry', now + 1000, (orderId) => this.reservations.expire(orderId));
    const recovered = await this.sweepIndex(shard, 'pending', now - this.options.recoveryGraceMs + 1000, (orderId) =>
      this.reservations.recover(orderId),
    );
    const reapplied = await this.sweepIndex(shard, 'releasing', now - (this.options.reapplyAfterMs ?? 5000), async (member) => {
      const [orderId, releaseId] = member.split('\n');
      await this.reservations.reapplyRelease(orderId, releaseId);
      return 'done';
    });
    if (expired) this.onSwept('expired', expired);
    if (recovered) this.onSwept('recovered', recovered);
    if (reapplied) this.onSwept('reapplied', reapplied);
  }

  /** The shard count, for a metric per shard. */
  get shardCount(): number {
    return this.gateway.shards.keys.shardCount;
  }

  /**
   * Age in ms of the oldest Reserve of a shard still waiting in the pending index (0 when there is
   * none): up to RESERVE_TIMEOUT_MS while carts are in flight; growing past RECOVERY_GRACE_MS means
   * crash recovery is not keeping up.
   */
  async oldestPendingAgeMs(shard: number): Promise<number> {
    const [oldest] = await this.gateway.due(shard, 'pending', Infinity, 1);
    return oldest ? Math.max(0, Date.now() - oldest.score) : 0;
  }

  /**
   * Works through the due part of one shard index, oldest first, a page at a time, and returns how
   * many entries this call acted on. A handled entry leaves the index, so the next page read from
   * the head would begin with what earlier pages left there: entries not due yet on the Redis clock,
   * and steps that failed. Each page is read at an offset of that many, so entries that cannot be
   * acted on now never hide the ones behind them; reading the same head every round once stalled
   * crash recovery for good.
   */
  private async sweepIndex(
    shard: number,
    index: 'expiry' | 'pending' | 'releasing',
    upTo: number,
    step: (member: string) => Promise<SweepOutcome>,
  ): Promise<number> {
    const batch = this.options.batch ?? 100;
    let left = 0;
    let done = 0;
    for (let page = 0; page < (this.options.pagesPerRound ?? 10); page++) {
      const entries = await this.gateway.due(shard, index, upTo, batch, left);
      for (const { member } of entries) {
        const outcome = await this.attempt(member, step);
        if (outcome === 'done') done++;
        else if (outcome === 'kept') left++;
      }
      if (entries.length < batch) break;
    }
    return done;
  }

  private async attempt(member: string, step: (member: string) => Promise<SweepOutcome>): Promise<SweepOutcome> {
    try {
      return await step(member);
    } catch (err) {
      this.logger.warn({ err, member }, 'sweep step failed; retried next round');
      // Presumed still in the index: skip it for the rest of this round.
      return 'kept';
    }
  }
}
