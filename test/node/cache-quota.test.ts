// A full download cache (src/io/hub/cache-quota.ts). On disk: the cache folder's writes fail with
// ENOSPC once a byte budget is spent, as a full disk's do (node:fs/promises' open is wrapped for
// files under that folder only). In the browser's Cache API: a test double of the Cache object
// whose put rejects with a QuotaExceededError DOMException, as Chromium's does over the quota.
// Each is a CacheQuotaError 'CACHE_QUOTA' naming the file and the bytes it needed, nothing is
// left half-written, and with cache: 'best-effort' the model loads from the network instead,
// giving what an uncached load gives.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { browserCache } from '../../src/io/hub/cache.ts';
import { CacheQuotaError } from '../../src/io/hub/cache-quota.ts';
import { serveStatic, type StaticServer } from '../helpers/static-server.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-cache-quota-');
const TEXTS = ['the cat sat on the mat', 'stock markets fell today'];
let server: StaticServer;
let url: string;
let modelBytes: number;

/** Files under `dir`, recursively, by relative path. */
async function files(dir: string): Promise<string[]> {
  const out = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return out.filter((d) => d.isFile()).map((d) => join(d.parentPath, d.name).slice(dir.length + 1)).sort();
}

/** Writes to files under `dir` fail with ENOSPC once `budget` bytes have been written there. */
function fullDiskUnder(dir: string, budget: number): () => void {
  const real = fs.promises.open;
  let spent = 0;
  fs.promises.open = (async (path: fs.PathLike, ...rest: unknown[]) => {
    const h = await (real as (...a: unknown[]) => Promise<fs.promises.FileHandle>)(path, ...rest);
    if (!String(path).startsWith(dir)) return h;
    const write = h.write.bind(h) as (...a: unknown[]) => Promise<{ bytesWritten: number }>;
    (h as { write: unknown }).write = async (buf: Uint8Array, ...a: unknown[]) => {
      spent += buf.byteLength;
      if (spent > budget) throw Object.assign(new Error(`ENOSPC: no space left on device, write`), { code: 'ENOSPC', errno: -28, syscall: 'write' });
      return write(buf, ...a);
    };
    return h;
  }) as typeof fs.promises.open;
  syncBuiltinESMExports();
  return () => {
    fs.promises.open = real;
    syncBuiltinESMExports();
  };
}

beforeAll(async () => {
  const dir = join(tmp.dir, 'served', 'bert');
  await writeTinyBert(dir, { layers: 2, maxPositions: 64 });
  modelBytes = fs.statSync(join(dir, 'model.safetensors')).size;
  server = await serveStatic({ '/': join(tmp.dir, 'served') });
  url = `${server.url}/bert/`;
}, 60_000);

afterAll(async () => {
  await server?.close();
});

describe('a full disk cache', () => {
  let want: number[][];
  beforeAll(async () => {
    const m = await BertModel.load(url, { cache: false, dtype: 'q8' });
    want = (await m.embed(TEXTS)).map((r) => Array.from(r));
    m.dispose();
  }, 60_000);

  it('a load is a CACHE_QUOTA error with the bytes needed; nothing half-written stays', async () => {
    const cacheDir = join(tmp.dir, 'cache-full');
    const restore = fullDiskUnder(cacheDir, 64 * 1024); // the text files fit, the weights do not
    try {
      const e = await BertModel.load(url, { cacheDir, dtype: 'q8' }).then(() => undefined, (x: unknown) => x);
      expect(e).toBeInstanceOf(CacheQuotaError);
      const q = e as CacheQuotaError;
      expect(q.code).toBe('CACHE_QUOTA');
      expect(q.needed).toBe(modelBytes);
      expect(q.url).toBe(`${url}model.safetensors`);
      expect(q.message).toContain(`storing ${url}model.safetensors needs ${modelBytes} bytes`);
      expect(q.message).toContain(cacheDir);
      expect(q.message).toContain("cache: 'best-effort'");
      expect(q.message.split('\n')).toHaveLength(1);
      expect(typeof q.available === 'number' || q.available === undefined).toBe(true);
      const left = await files(cacheDir);
      expect(left.filter((f) => f.includes('.part-'))).toEqual([]);
      expect(left.some((f) => f.endsWith('model.safetensors'))).toBe(false);
      expect(left.some((f) => f.endsWith('config.json'))).toBe(true); // what fitted is cached whole
    } finally {
      restore();
    }
  }, 60_000);

  it("cache: 'best-effort' loads the weights from the network and gives what an uncached load gives", async () => {
    const cacheDir = join(tmp.dir, 'cache-best-effort');
    const restore = fullDiskUnder(cacheDir, 64 * 1024);
    try {
      const m = await BertModel.load(url, { cacheDir, dtype: 'q8', cache: 'best-effort' });
      try {
        expect((await m.embed(TEXTS)).map((r) => Array.from(r))).toEqual(want);
      } finally {
        m.dispose();
      }
      const left = await files(cacheDir);
      expect(left.filter((f) => f.includes('.part-'))).toEqual([]);
      expect(left.some((f) => f.endsWith('model.safetensors'))).toBe(false);
    } finally {
      restore();
    }
    // With room again, the next load caches the weights.
    const m = await BertModel.load(url, { cacheDir, dtype: 'q8', cache: 'best-effort' });
    m.dispose();
    expect((await files(cacheDir)).some((f) => f.endsWith('model.safetensors'))).toBe(true);
  }, 60_000);
});

describe('a full Cache API (test double of the Cache object)', () => {
  it('put is a CACHE_QUOTA error with the bytes needed, the free bytes, and the download itself', async () => {
    const stored = new Map<string, Response>();
    const fake = {
      match: async (u: string) => stored.get(u)?.clone(),
      put: async (u: string, r: Response) => {
        if ((await r.clone().arrayBuffer()).byteLength > 100) throw new DOMException('Quota exceeded.', 'QuotaExceededError');
        stored.set(u, r);
      },
      keys: async () => [...stored.keys()].map((u) => new Request(u)),
      delete: async (u: string) => stored.delete(u),
    };
    const g = globalThis as { caches?: unknown; navigator?: unknown };
    const had = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
    g.caches = { open: async () => fake };
    Object.defineProperty(globalThis, 'navigator', { value: { storage: { estimate: async () => ({ quota: 1000, usage: 950 }) } }, configurable: true });
    try {
      const cache = await browserCache();
      const small = await cache.put(['k', 'small'], 'https://x.test/small', new Response('tiny'), () => undefined);
      expect(await small.text()).toBe('tiny');
      expect(stored.has('https://x.test/small')).toBe(true);
      const body = new Uint8Array(5000).fill(7);
      const e = await cache.put(['k', 'big'], 'https://x.test/big', new Response(body), () => undefined).then(() => undefined, (x: unknown) => x);
      expect(e).toBeInstanceOf(CacheQuotaError);
      const q = e as CacheQuotaError;
      expect(q).toMatchObject({ code: 'CACHE_QUOTA', needed: 5000, available: 50, url: 'https://x.test/big' });
      expect(q.message).toContain("Cache API 'webq': the download cache is full (50 bytes free): storing https://x.test/big needs 5000 bytes");
      expect(new Uint8Array(await q.download!.arrayBuffer())).toEqual(body); // a best-effort load uses it as it is
      expect(stored.has('https://x.test/big')).toBe(false);
    } finally {
      delete g.caches;
      if (had) Object.defineProperty(globalThis, 'navigator', had);
      else delete g.navigator;
    }
  });
});
