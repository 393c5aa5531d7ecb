import net from 'node:net';

/**
 * How a paused proxy treats traffic:
 * - `reset`: open connections are destroyed and new ones are reset at once, as when a server dies
 *   (clients notice immediately and reconnect);
 * - `blackhole`: nothing flows either way and nothing is closed, as in a network partition (clients
 *   notice only through their own timeouts or keepalives); new connections are held;
 * - `hold-replies`: requests reach the target and run, their replies are held: the "applied, but the
 *   answer was lost" case of a write.
 * Held bytes are delivered, in order, by `resume()`: the partition heals.
 */
export type PauseMode = 'reset' | 'blackhole' | 'hold-replies';

/** One proxied connection: the client's socket and, once dialled, the target's. */
interface Link {
  readonly client: net.Socket;
  upstream?: net.Socket;
  /** Whether client→target and target→client bytes currently flow. */
  requests: boolean;
  replies: boolean;
}

/**
 * A TCP proxy in front of one dependency (etcd, Redis, MySQL, ...), so a test can cut it off and
 * bring it back without touching the real server. Listens on 127.0.0.1 with a free port; point the
 * client at `127.0.0.1:<port>`.
 */
export class TcpProxy {
  private readonly links = new Set<Link>();
  private mode: PauseMode | 'open' = 'open';

  private constructor(
    private readonly server: net.Server,
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {
    server.on('connection', (socket) => this.accept(socket));
  }

  /** Starts a proxy to `target` ("host:port"). */
  static async start(target: string): Promise<TcpProxy> {
    const at = target.lastIndexOf(':');
    const host = target.slice(0, at).replace(/^\[|\]$/g, '');
    const port = Number(target.slice(at + 1));
    if (at < 1 || !Number.isInteger(port)) throw new Error(`TcpProxy: ${JSON.stringify(target)} is not host:port`);
    const server = net.createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return new TcpProxy(server, host, port);
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** "127.0.0.1:<port>", to put in a client's configuration. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Number of connections the proxy holds open (dialled or held). */
  get connections(): number {
    return this.links.size;
  }

  /** Cuts the target off; see PauseMode. */
  pause(mode: PauseMode = 'reset'): void {
    this.mode = mode;
    for (const link of this.links) this.apply(link);
  }

  /** Lets traffic flow again, held bytes first. */
  resume(): void {
    this.mode = 'open';
    for (const link of this.links) this.apply(link);
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    for (const link of this.links) this.drop(link);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (this.mode === 'reset') {
      client.resetAndDestroy();
      return;
    }
    const link: Link = { client, requests: false, replies: false };
    this.links.add(link);
    client.on('error', () => this.drop(link));
    client.on('close', () => this.drop(link));
    this.apply(link);
  }

  /** Brings one connection in line with the current mode. */
  private apply(link: Link): void {
    if (this.mode === 'reset') {
      this.drop(link);
      return;
    }
    if (this.mode !== 'blackhole' && !link.upstream) this.dial(link);
    const { client, upstream } = link;
    if (!upstream) return;
    const requests = this.mode === 'open' || this.mode === 'hold-replies';
    const replies = this.mode === 'open';
    if (link.requests !== requests) setFlow(client, upstream, (link.requests = requests));
    if (link.replies !== replies) setFlow(upstream, client, (link.replies = replies));
  }

  private dial(link: Link): void {
    const upstream = net.connect(this.targetPort, this.targetHost);
    upstream.pause();
    link.upstream = upstream;
    upstream.on('error', () => this.drop(link));
    upstream.on('close', () => this.drop(link));
  }

  private drop(link: Link): void {
    if (!this.links.delete(link)) return;
    link.client.resetAndDestroy();
    link.upstream?.destroy();
  }
}

/** Pipes `from` into `to`, or stops and holds what `from` sends (it stays buffered, in order). */
function setFlow(from: net.Socket, to: net.Socket, flowing: boolean): void {
  if (flowing) {
    from.pipe(to);
    from.resume();
  } else {
    from.unpipe(to);
    from.pause();
  }
}
