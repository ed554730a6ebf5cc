import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint, ShardedCheckpoint } from '../../src/io/safetensors/checkpoint.ts';
import { SourceError } from '../../src/io/errors.ts';
import { SafetensorsFile } from '../../src/io/safetensors/reader.ts';
import { urlSource } from '../../src/io/source.ts';
import { encodeSafetensors } from '../../src/io/safetensors/writer.ts';

function concat(chunks: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks));
}

const weights = new Float32Array(1024).map((_, i) => i / 8);
const MODEL = concat(
  encodeSafetensors(
    [
      { name: 'big', dtype: 'F32', shape: [32, 32], data: weights },
      { name: 'small', dtype: 'U8', shape: [3], data: new Uint8Array([1, 2, 3]) },
    ],
    { format: 'pt' },
  ),
);
const SHARD1 = concat(encodeSafetensors([{ name: 'a', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }]));
const SHARD2 = concat(encodeSafetensors([{ name: 'b', dtype: 'I32', shape: [1], data: new Int32Array([-3]) }]));
const INDEX = new TextEncoder().encode(JSON.stringify({ metadata: { total_size: 12 }, weight_map: { a: 's1.safetensors', b: 's2.safetensors' } }));

const FILES = new Map<string, Uint8Array>([
  ['/model.safetensors', MODEL],
  ['/folder/model.safetensors', MODEL],
  ['/sharded/model.safetensors.index.json', INDEX],
  ['/sharded/s1.safetensors', SHARD1],
  ['/sharded/s2.safetensors', SHARD2],
]);

interface Logged {
  method: string;
  path: string;
  range: string | undefined;
}

interface Options {
  ranges: boolean;
  headAllowed: boolean;
  /** Ranges longer than this get half their bytes and a dropped connection. */
  cutAbove?: number;
  /** Ranges longer than this get an honest but short 206 body. */
  shortAbove?: number;
  /** Full-body answers claim this many extra bytes, then the connection drops. */
  truncateWhole?: boolean;
}

async function serve(opts: Options): Promise<{ url: string; log: Logged[]; close: () => Promise<void> }> {
  const log: Logged[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url!, 'http://x').pathname;
    log.push({ method: req.method!, path, range: req.headers.range });
    const body = FILES.get(path);
    if (!body) return void res.writeHead(404).end('no');
    if (req.method === 'HEAD') {
      if (!opts.headAllowed) return void res.writeHead(405).end();
      return void res.writeHead(200, { 'Content-Length': body.length, 'Accept-Ranges': opts.ranges ? 'bytes' : 'none' }).end();
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (!opts.ranges || !m) {
      if (opts.truncateWhole) {
        res.writeHead(200, { 'Content-Length': body.length + 100 });
        res.write(body);
        return void setTimeout(() => res.socket?.destroy(), 10);
      }
      return void res.writeHead(200, { 'Content-Length': body.length }).end(body);
    }
    const start = Number(m[1]);
    const end = Math.min(Number(m[2]), body.length - 1);
    if (start >= body.length) return void res.writeHead(416, { 'Content-Range': `bytes */${body.length}` }).end();
    const slice = body.subarray(start, end + 1);
    const headers = { 'Content-Range': `bytes ${start}-${end}/${body.length}` };
    if (opts.cutAbove !== undefined && slice.length > opts.cutAbove) {
      res.writeHead(206, { ...headers, 'Content-Length': slice.length });
      res.write(slice.subarray(0, slice.length >> 1));
      return void setTimeout(() => res.socket?.destroy(), 10);
    }
    if (opts.shortAbove !== undefined && slice.length > opts.shortAbove) {
      const short = slice.subarray(0, slice.length >> 1);
      return void res.writeHead(206, { ...headers, 'Content-Length': short.length }).end(short);
    }
    res.writeHead(206, { ...headers, 'Content-Length': slice.length }).end(slice);
  };
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('URL source with a Range-capable server', () => {
  let srv: Awaited<ReturnType<typeof serve>>;
  beforeAll(async () => {
    srv = await serve({ ranges: true, headAllowed: true });
  });
  afterAll(() => srv.close());

  it('reads header and tensors by range, never the whole file', async () => {
    const f = await SafetensorsFile.open(`${srv.url}/model.safetensors`);
    expect(f.name).toBe(`${srv.url}/model.safetensors`);
    expect({ ...f.metadata }).toEqual({ format: 'pt' });
    expect(await f.readAs('big', 'f32')).toEqual(weights);
    expect(await f.readAs('small', 'u8')).toEqual(new Uint8Array([1, 2, 3]));
    const gets = srv.log.filter((r) => r.method === 'GET');
    expect(gets.length).toBeGreaterThan(0);
    for (const g of gets) {
      expect(g.range).toMatch(/^bytes=\d+-\d+$/);
      const [a, b] = g.range!.slice(6).split('-').map(Number);
      expect(b - a + 1).toBeLessThan(MODEL.length);
    }
  });

  it('opens folder URLs and sharded index URLs', async () => {
    const single = await openCheckpoint(new URL(`${srv.url}/folder/`));
    expect(single).toBeInstanceOf(SafetensorsFile);
    expect(single.tensors.length).toBe(2);
    for (const location of [`${srv.url}/sharded/`, `${srv.url}/sharded/model.safetensors.index.json`]) {
      const ckpt = await openCheckpoint(location);
      expect(ckpt).toBeInstanceOf(ShardedCheckpoint);
      expect(await ckpt.readAs('a', 'f32')).toEqual(new Float32Array([1, 2]));
      expect(await ckpt.readAs('b', 'i32')).toEqual(new Int32Array([-3]));
    }
  });

  it('reports 404 as SOURCE_NOT_FOUND naming the URL and status', async () => {
    const url = `${srv.url}/missing.safetensors`;
    const e = await SafetensorsFile.open(url).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(SourceError);
    expect(e).toMatchObject({ code: 'SOURCE_NOT_FOUND', status: 404 });
    expect((e as Error).message).toContain(url);
    expect((e as Error).message).toContain('404');
    await expect(openCheckpoint(`${srv.url}/nothing-here/`)).rejects.toMatchObject({
      code: 'SAFETENSORS_NO_CHECKPOINT',
      message: expect.stringContaining('/nothing-here/'),
    });
  });

  it('a read past the end is a short read', async () => {
    const src = urlSource(`${srv.url}/model.safetensors`);
    await expect(src.read(MODEL.length - 2, 10)).rejects.toMatchObject({ code: 'SOURCE_SHORT_READ' });
    await expect(src.read(MODEL.length + 5, 1)).rejects.toMatchObject({ code: 'SOURCE_SHORT_READ' });
  });
});

describe('URL source with a server that ignores Range', () => {
  it('falls back to one full download and serves every read from it', async () => {
    const srv = await serve({ ranges: false, headAllowed: false });
    try {
      const f = await SafetensorsFile.open(`${srv.url}/model.safetensors`);
      expect(await f.readAs('big', 'f32')).toEqual(weights);
      expect(await f.readAs('small', 'u8')).toEqual(new Uint8Array([1, 2, 3]));
      expect(srv.log.filter((r) => r.method === 'GET').length).toBe(1);
    } finally {
      await srv.close();
    }
  });

  it('a full download cut short is a SOURCE_SHORT_READ', async () => {
    const srv = await serve({ ranges: false, headAllowed: true, truncateWhole: true });
    try {
      await expect(SafetensorsFile.open(`${srv.url}/model.safetensors`)).rejects.toMatchObject({
        code: 'SOURCE_SHORT_READ',
        message: expect.stringContaining(`${srv.url}/model.safetensors`),
      });
    } finally {
      await srv.close();
    }
  });
});

describe('URL source with truncated range responses', () => {
  it('a dropped connection mid-body is a SOURCE_SHORT_READ', async () => {
    const srv = await serve({ ranges: true, headAllowed: true, cutAbove: 1000 });
    try {
      const f = await SafetensorsFile.open(`${srv.url}/model.safetensors`);
      await expect(f.readBytes('big')).rejects.toMatchObject({ code: 'SOURCE_SHORT_READ', message: expect.stringContaining(srv.url) });
      expect(await f.readAs('small', 'u8')).toEqual(new Uint8Array([1, 2, 3]));
    } finally {
      await srv.close();
    }
  });

  it('a complete but short 206 body is a SOURCE_SHORT_READ', async () => {
    const srv = await serve({ ranges: true, headAllowed: true, shortAbove: 1000 });
    try {
      const f = await SafetensorsFile.open(`${srv.url}/model.safetensors`);
      await expect(f.readBytes('big')).rejects.toMatchObject({ code: 'SOURCE_SHORT_READ', message: expect.stringContaining('truncated') });
    } finally {
      await srv.close();
    }
  });
});
