import { Client, Metadata, MethodDefinition, status } from '@grpc/grpc-js';
import { setTimeout as sleep } from 'node:timers/promises';
import { InventoryError, fromServiceError, inventoryError } from './errors';
import { CallOptions, ResolvedOptions, callTimeoutMs } from './options';
import { retryDelayMs } from './retry';

/** The parts of a generated method definition (gen/, outputServices=grpc-js) a unary call needs. */
export type UnaryMethod<Req, Res> = Pick<MethodDefinition<Req, Res>, 'path' | 'requestSerialize' | 'responseDeserialize'>;

/** Told before each retry, for logs and metrics. */
export interface RetryEvent {
  /** The method's path, e.g. `/inventory.v1.InventoryService/Reserve`. */
  readonly method: string;
  /** The attempt that failed, from 1. */
  readonly attempt: number;
  readonly error: InventoryError;
  /** The wait before the next attempt. */
  readonly delayMs: number;
}

/**
 * One channel and the call path both clients share: a deadline per call that bounds its retries,
 * a shorter one per attempt, retries of the very same request (the API is idempotent on its ids),
 * cancellation by AbortSignal, and every failure turned into a typed InventoryError.
 */
export class Rpc {
  private readonly channel: Client;
  /** The client's own metadata (the admin token), built once: a key grpc-js refuses throws at construction. */
  private readonly baseMetadata: Metadata;

  constructor(
    private readonly options: ResolvedOptions,
    private readonly onRetry?: (event: RetryEvent) => void,
  ) {
    this.channel = new Client(options.target, options.credentials, options.channelOptions);
    this.baseMetadata = withEntries(new Metadata(), options.metadata);
  }

  /**
   * Sends `request` until it is answered, the answer is not worth a retry (retry.ts), or the call's
   * time is up. `requestId` goes into the error, so a failed admin command can be sent again as is.
   */
  async unary<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, call: CallOptions = {}, requestId?: string): Promise<Res> {
    const timeoutMs = callTimeoutMs(call, this.options);
    const deadline = Date.now() + timeoutMs;
    const attemptMs = this.options.attemptTimeoutMs ?? timeoutMs / 2;
    const metadata = this.metadataOf(call);
    const { signal } = call;
    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted) throw cancelledByCaller(attempt - 1, requestId);
      try {
        // The last attempt the policy allows may use all the time left.
        const attemptDeadline = attempt >= this.options.retry.maxAttempts ? deadline : Math.min(deadline, Date.now() + attemptMs);
        return await this.attempt(method, request, metadata.clone(), attemptDeadline, signal);
      } catch (err) {
        const error = fromServiceError(err, { attempts: attempt, requestId });
        const delayMs = retryDelayMs(this.options.retry, error, attempt, deadline - Date.now());
        if (delayMs === undefined || signal?.aborted) throw error;
        this.onRetry?.({ method: method.path, attempt, error, delayMs });
        // An abort during the wait ends it early; the loop's first line then throws.
        await sleep(delayMs, undefined, { signal }).catch(() => undefined);
      }
    }
  }

  close(): void {
    this.channel.close();
  }

  private attempt<Req, Res>(method: UnaryMethod<Req, Res>, request: Req, metadata: Metadata, deadline: number, signal?: AbortSignal): Promise<Res> {
    return new Promise((resolve, reject) => {
      const call = this.channel.makeUnaryRequest(method.path, method.requestSerialize, method.responseDeserialize, request, metadata, { deadline }, (err, res) => {
        signal?.removeEventListener('abort', cancel);
        if (err) reject(err);
        else resolve(res as Res);
      });
      const cancel = () => call.cancel();
      signal?.addEventListener('abort', cancel, { once: true });
    });
  }

  /** The call's metadata: the client's, with the call's own over it; a key grpc-js refuses throws here, before anything is sent. */
  private metadataOf(call: CallOptions): Metadata {
    return call.metadata ? withEntries(this.baseMetadata.clone(), call.metadata) : this.baseMetadata;
  }
}

function withEntries(metadata: Metadata, entries: Readonly<Record<string, string>> | undefined): Metadata {
  for (const [key, value] of Object.entries(entries ?? {})) metadata.set(key, value);
  return metadata;
}

function cancelledByCaller(attempts: number, requestId?: string): InventoryError {
  return inventoryError({ code: status.CANCELLED, details: 'cancelled by the caller (AbortSignal)', attempts, requestId });
}
