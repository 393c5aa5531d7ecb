import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../kernel/logger';
import type { RegistryCache } from './cache';
import type { RegistrySnapshot } from './types';

/**
 * The registry snapshot on disk (REGISTRY_SNAPSHOT_FILE): written after the cache changes (at most
 * once per `intervalMs`, atomically: a temporary file renamed over the old one), read at start when
 * etcd does not answer, so a server restarted during an etcd outage still routes (DESIGN promise 6).
 */
export class RegistrySnapshotFile {
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    readonly file: string,
    private readonly logger: Logger,
    private readonly intervalMs = 1000,
  ) {}

  /** The saved snapshot, or undefined when there is none (or it cannot be read: logged). */
  async load(): Promise<RegistrySnapshot | undefined> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.warn({ err, file: this.file }, 'registry snapshot: cannot read it');
      return undefined;
    }
    try {
      const snapshot = JSON.parse(text) as RegistrySnapshot;
      if (typeof snapshot.revision !== 'string' || typeof snapshot.savedAt !== 'number' || !Array.isArray(snapshot.entries)) throw new Error('not a registry snapshot');
      return snapshot;
    } catch (err) {
      this.logger.warn({ err, file: this.file }, 'registry snapshot: ignoring a file that does not parse');
      return undefined;
    }
  }

  /** Saves the cache after each change (coalesced), until stopped. */
  follow(cache: RegistryCache): void {
    const soon = () => {
      if (this.timer) return;
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.save(cache.snapshot());
      }, this.intervalMs);
      this.timer.unref();
    };
    cache.on('reloaded', soon);
    cache.on('partition-added', soon);
    cache.on('partition-removed', soon);
    cache.on('sku-changed', soon);
  }

  /** Writes now (after any write under way). */
  save(snapshot: RegistrySnapshot): Promise<void> {
    this.writing = this.writing.then(async () => {
      const temp = `${this.file}.${process.pid}.tmp`;
      try {
        await mkdir(path.dirname(this.file), { recursive: true });
        await writeFile(temp, JSON.stringify(snapshot));
        await rename(temp, this.file);
      } catch (err) {
        this.logger.warn({ err, file: this.file }, 'registry snapshot: cannot write it; a restart during an etcd outage would have none');
      }
    });
    return this.writing;
  }

  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.writing;
  }
}
