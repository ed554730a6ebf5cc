// Network reads have an idle timeout: a server that accepts and never answers, or stalls
// mid-body, fails fast with an error naming the URL (short timeouts here; the default is 30 s).
import { readdir } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.ts';
import { DEFAULT_NETWORK_TIMEOUT_MS, networkTimeoutMs } from '../../src/io/http.ts';
import { openModelFiles } from '../../src/io/hub/hub.ts';
import { urlSource } from '../../src/io/url-source.ts';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-io-net-');
const sockets = new Set<Socket>();
let silent: TcpServer;
let stalling: HttpServer;
let silentUrl: string;
let stallUrl: string;

function track(s: Socket): void {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
}

beforeAll(async () => {
  // Accepts the connection, reads the request, never writes a byte.
  silent = createTcpServer((s) => track(s));
  await new Promise<void>((ok) => silent.listen(0, '127.0.0.1', ok));
  silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  // Answers 200 with Content-Length 1000, sends 10 bytes, then nothing. HEAD says the size.
  stalling = createHttpServer((req, res) => {
    if (req.method === 'HEAD') return void res.writeHead(200, { 'Content-Length': 1000, 'Accept-Ranges': 'bytes' }).end();
    res.writeHead(req.headers.range ? 206 : 200, { 'Content-Length': 1000, ...(req.headers.range && { 'Content-Range': 'bytes 0-999/1000' }) });
    res.write(Buffer.alloc(10, 65));
  });
  stalling.on('connection', track);
  await new Promise<void>((ok) => stalling.listen(0, '127.0.0.1', ok));
  stallUrl = `http://127.0.0.1:${(stalling.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((ok) => silent.close(ok));
  await new Promise((ok) => stalling.close(ok));
});
afterEach(() => vi.unstubAllEnvs());

async function timed(p: Promise<unknown>): Promise<{ e: Error & { code: string }; ms: number }> {
  const t0 = performance.now();
  try {
    await p;
  } catch (e) {
    return { e: e as Error & { code: string }, ms: performance.now() - t0 };
  }
  throw new Error('expected a rejection');
}

describe('idle timeout', () => {
  it('a server that never answers: range reads, hub files and webq info fail naming the URL', async () => {
    const url = `${silentUrl}/model.safetensors`;
    const { e, ms } = await timed(SafetensorsFile.open(url, { timeoutMs: 150 }));
    expect(e.code).toBe('SOURCE_TIMEOUT');
    expect(e.message).toContain(`${url}: no response for 0.15 s`);
    expect(e.message).toContain('WEBQ_NETWORK_TIMEOUT');
    expect(ms).toBeLessThan(5000);

    const files = await openModelFiles('webq/tiny', { hubUrl: silentUrl, cacheDir: join(tmp.dir, 'cache-silent'), timeoutMs: 150 });
    const hubErr = await timed(files.readJson('config.json'));
    expect(hubErr.e.code).toBe('SOURCE_TIMEOUT');
    expect(hubErr.e.message).toContain(`${silentUrl}/webq/tiny/resolve/main/config.json`);

    vi.stubEnv('WEBQ_NETWORK_TIMEOUT', '150');
    let err = '';
    const t0 = performance.now();
    const code = await main(['info', url], { stdout: () => {}, stderr: (t) => void (err += t) });
    expect(code).toBe(1);
    expect(err).toMatch(new RegExp(`^webq: ${url.replace(/[.]/g, '\\.')}: no response for 0\\.15 s`));
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('a server that stalls mid-body: the download fails and leaves nothing in the cache', async () => {
    const cacheDir = join(tmp.dir, 'cache-stall');
    const files = await openModelFiles('webq/tiny', { hubUrl: stallUrl, cacheDir, timeoutMs: 150 });
    const { e, ms } = await timed(files.readText('config.json'));
    expect(e.code).toBe('SOURCE_TIMEOUT');
    expect(e.message).toContain(`${stallUrl}/webq/tiny/resolve/main/config.json: no data (mid-body) for 0.15 s`);
    expect(ms).toBeLessThan(5000);
    const left = (await readdir(cacheDir, { recursive: true }).catch(() => [])).map(String);
    expect(left.filter((f) => f.endsWith('config.json') || f.includes('.part-'))).toEqual([]);

    // Range reads (no cache) stall the same way.
    const src = urlSource(`${stallUrl}/model.safetensors`, { timeoutMs: 150 });
    const range = await timed(src.read(0, 100));
    expect(range.e.code).toBe('SOURCE_TIMEOUT');
    expect(range.e.message).toContain(`${stallUrl}/model.safetensors: no data (mid-body) for 0.15 s`);
  });

  it('takes the timeout from the option, then WEBQ_NETWORK_TIMEOUT, else 30 s', () => {
    expect(DEFAULT_NETWORK_TIMEOUT_MS).toBe(30_000);
    expect(networkTimeoutMs()).toBe(30_000);
    vi.stubEnv('WEBQ_NETWORK_TIMEOUT', '1234');
    expect(networkTimeoutMs()).toBe(1234);
    expect(networkTimeoutMs(50)).toBe(50);
    vi.stubEnv('WEBQ_NETWORK_TIMEOUT', 'soon');
    expect(() => networkTimeoutMs()).toThrow(/WEBQ_NETWORK_TIMEOUT=soon: expected the network timeout in milliseconds/);
  });
});
