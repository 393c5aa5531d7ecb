import { Logger } from '../server/logger';
import { RedisGateway } from './gateway';
import { ReservationService } from './reservations';

export interface SweeperOptions {
  /** Pending Reserves older than this are rolled back. */
  readonly recoveryGraceMs: number;
  /** A recorded release still unapplied after this long is re-applied (its process died). Default 5000. */
  readonly reapplyAfterMs?: number;
  /** Orders handled per shard and index per round. */
  readonly batch?: number;
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
    const batch = this.options.batch ?? 100;
    const shardCount = this.gateway.shards.keys.shardCount;
    const now = Date.now();
    for (let shard = 0; shard < shardCount; shard++) {
      // A second of slack: the Redis clock may run ahead of ours; the script re-checks anyway.
      const expiring = await this.gateway.due(shard, 'expiry', now + 1000, batch);
      const expired = await this.each(expiring, (orderId) => this.reservations.expire(orderId));
      const stuck = await this.gateway.due(shard, 'pending', now - this.options.recoveryGraceMs + 1000, batch);
      const recovered = await this.each(stuck, (orderId) => this.reservations.recover(orderId));
      const unfinished = await this.gateway.due(shard, 'releasing', now - (this.options.reapplyAfterMs ?? 5000), batch);
      const reapplied = await this.each(unfinished, async (member) => {
        const [orderId, releaseId] = member.split('\n');
        await this.reservations.reapplyRelease(orderId, releaseId);
        return true;
      });
      if (expired) this.onSwept('expired', expired);
      if (recovered) this.onSwept('recovered', recovered);
      if (reapplied) this.onSwept('reapplied', reapplied);
    }
  }

  private async each(members: string[], step: (member: string) => Promise<boolean>): Promise<number> {
    let done = 0;
    for (const member of members) {
      try {
        if (await step(member)) done++;
      } catch (err) {
        this.logger.warn({ err, member }, 'sweep step failed; retried next round');
      }
    }
    return done;
  }
}
