/**
 * The lock on one cached model. An update of the cached files (updateCachedModel) holds it
 * exclusive from its first staged file to its last move; a load holds it shared from its first
 * read (config.json) to its last (the weights' upload), so a load never reads config.json of
 * one version and model.safetensors of the next, and loads do not wait for each other.
 *
 * Where there are Web Locks (browsers: every tab and worker of an origin; Deno, within its
 * process) the lock is the Web Lock `webq-cache:<model key>`, which the browser frees when a tab
 * closes or crashes. Elsewhere (Node 20) it is a lock inside this process: loads and updates of
 * one process exclude each other, but two processes sharing a disk cache do not (each file still
 * appears whole there, by rename; see src/io/cache.ts).
 *
 * Requests are granted in the order they are made (as Web Locks grant them): a waiting update is
 * not passed by loads that ask after it, so a stream of loads cannot starve it.
 */
import type { ModelFiles } from './model-files.ts';

export type LockMode = 'shared' | 'exclusive';

interface LockManagerLike {
  request<T>(name: string, options: { mode: LockMode }, callback: () => Promise<T>): Promise<T>;
}

interface Waiter {
  readonly mode: LockMode;
  readonly grant: () => void;
}

/** A reader-writer lock per name, for runtimes without Web Locks. */
class LocalLocks {
  private readonly names = new Map<string, { mode: LockMode; holders: number; queue: Waiter[] }>();

  async request<T>(name: string, options: { mode: LockMode }, fn: () => Promise<T>): Promise<T> {
    await this.acquire(name, options.mode);
    try {
      return await fn();
    } finally {
      this.release(name);
    }
  }

  private acquire(name: string, mode: LockMode): Promise<void> {
    const s = this.names.get(name);
    if (!s) {
      this.names.set(name, { mode, holders: 1, queue: [] });
      return Promise.resolve();
    }
    if (mode === 'shared' && s.mode === 'shared' && s.queue.length === 0) {
      s.holders++;
      return Promise.resolve();
    }
    return new Promise((grant) => s.queue.push({ mode, grant }));
  }

  private release(name: string): void {
    const s = this.names.get(name)!;
    if (--s.holders > 0) return;
    const next = s.queue.shift();
    if (!next) {
      this.names.delete(name);
      return;
    }
    s.mode = next.mode;
    s.holders = 1;
    next.grant();
    // Shared requests waiting right behind a shared one are granted with it.
    while (s.mode === 'shared' && s.queue[0]?.mode === 'shared') {
      s.holders++;
      s.queue.shift()!.grant();
    }
  }
}

const local = new LocalLocks();

function webLocks(): LockManagerLike | undefined {
  return (globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks;
}

/** The lock's name for the cached model whose keys start with `keyPrefix`. */
export function modelLockName(keyPrefix: readonly string[]): string {
  return `webq-cache:${keyPrefix.join('/')}`;
}

/** Runs `fn` holding the lock `name` in `mode` (see the top of this file). */
export function withCacheLock<T>(name: string, mode: LockMode, fn: () => Promise<T>): Promise<T> {
  return (webLocks() ?? local).request(name, { mode }, fn);
}

/**
 * Runs `fn`, a whole load from `files`, holding the cached model's lock shared where `files` is a
 * cached remote model (RemoteFiles.hold); other files (a folder, GGUF, no cache) run it as it is.
 */
export function loadHolding<T>(files: ModelFiles, fn: () => Promise<T>): Promise<T> {
  return files.hold ? files.hold(fn) : fn();
}
