import * as grpc from '@grpc/grpc-js';
import { healthClient, unary } from '../helpers/grpc';
import { FAST_RECONNECT } from './load';

/**
 * What a load balancer would see: the server's grpc.health.v1 status, polled every 200 ms, plus
 * "(degraded)" when the in-process health report has degraded lines. UNREACHABLE when the check
 * itself fails (the process is gone).
 */
export interface HealthSample {
  readonly at: number;
  readonly status: string;
}

export class HealthWatch {
  readonly samples: HealthSample[] = [];
  private readonly client: grpc.Client;
  private running = false;
  private loop: Promise<void> = Promise.resolve();

  constructor(address: string, private readonly degraded: () => readonly string[] = () => []) {
    this.client = healthClient(address, FAST_RECONNECT);
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        this.samples.push({ at: Date.now(), status: await this.status() });
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    this.client.close();
  }

  /** The first time at or after `since` the server said SERVING with no degraded line, if it has. */
  servingSince(since: number): number | undefined {
    return this.samples.find((s) => s.at >= since && s.status === 'SERVING')?.at;
  }

  private async status(): Promise<string> {
    try {
      const { status } = await unary<{ status: string }>(this.client, 'Check', { service: '' }, new grpc.Metadata(), { deadline: Date.now() + 1000 });
      return status === 'SERVING' && this.degraded().length > 0 ? 'SERVING (degraded)' : status;
    } catch {
      return 'UNREACHABLE';
    }
  }
}
