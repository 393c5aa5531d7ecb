import { ClientClosedError, EtcdWatchStreamEnded, isRecoverableError } from 'etcd3';
import { BreakerOpen, DependencyUnavailable } from '../kernel/dependency';

/** A registration older than the one stored: its epoch is fenced off, so it must not replace it. */
export class StaleEpochError extends Error {
  constructor(
    readonly sku: string,
    readonly partitionId: string,
    readonly epoch: number,
    readonly storedEpoch: number,
  ) {
    super(`partition ${sku}/${partitionId}: epoch ${epoch} is older than the registered epoch ${storedEpoch}`);
    this.name = 'StaleEpochError';
  }
}

/** A registry value that is not what this code writes (hand-edited, or a newer format). */
export class RegistryValueError extends Error {
  constructor(readonly key: string, message: string) {
    super(`registry key ${key}: ${message}`);
    this.name = 'RegistryValueError';
  }
}

/** A conditional write kept losing to concurrent writers of the same key. */
export class RegistryConflictError extends Error {
  constructor(readonly key: string, attempts: number) {
    super(`registry key ${key} changed under ${attempts} conditional writes in a row`);
    this.name = 'RegistryConflictError';
  }
}

/*
 * Which etcd failures are transient is decided here and only here.
 *
 * etcd3 marks UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, UNKNOWN, INTERNAL, RESOURCE_EXHAUSTED and
 * ABORTED as "recoverable", and by default retries every call (writes included) 3 more times on them,
 * with no delay (we do not retry DEADLINE_EXCEEDED: registry/etcd.ts). Each endpoint's breaker
 * (kernel/breaker.ts) counts them; once open, calls fail with BreakerOpen without reaching etcd until
 * it half-opens. Above the registry, failures are typed: etcdFailure().
 */

/** etcd cannot be reached now; the same call may well succeed later (queue it, retry it). */
export function isEtcdUnavailable(err: unknown): boolean {
  if (err instanceof DependencyUnavailable) return err.dependency === 'etcd';
  return err instanceof Error && !(err instanceof ClientClosedError) && (isRecoverableError(err) || err instanceof EtcdWatchStreamEnded);
}

/** The typed failure an etcd error stands for (DependencyUnavailable when etcd is unreachable), or the error itself. */
export function etcdFailure(err: unknown): unknown {
  if (err instanceof DependencyUnavailable || !isEtcdUnavailable(err)) return err;
  return new DependencyUnavailable('etcd', undefined, (err as Error).message, err);
}

/**
 * A write failed in a way that says nothing about whether etcd applied it: the request may have been
 * sent and its answer lost. Only a re-read tells. (A BreakerOpen never left the process.)
 */
export function mayHaveApplied(err: unknown): boolean {
  return err instanceof Error && !(err instanceof BreakerOpen) && isRecoverableError(err);
}
