/**
 * A Hugging Face look-alike on 127.0.0.1 for tests: `/<org>/<name>/resolve/<rev>/<file>` (only
 * rev "main") and `/plain/<name>/<file>` (the repo `webq/<name>` as a plain folder URL), with
 * range requests and 404s carrying the hub's X-Error-Code. `cors` adds the headers a page on
 * another origin needs (the demo test loads models from here in Chromium). `commits` gives repos a
 * commit for "main": answers then carry X-Repo-Commit, as the hub's do, and the commit works as a
 * revision too. `api` adds the hub's file list, `/api/models/<org>/<name>/revision/<rev>`
 * (`{ id, sha, siblings: [{ rfilename }] }`); without it that path is a 404, as on a plain mirror.
 */
import { readdir, readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface FakeHub {
  url: string;
  log: { method: string; path: string; range?: string }[];
  close(): Promise<void>;
}

export interface FakeHubOptions {
  /** `<org>/<name>/<file>` entries whose body is cut off mid-way (a dropped connection). */
  truncated?: ReadonlySet<string>;
  cors?: boolean;
  /** id "org/name" -> the commit "main" is at (read per request, so a test can move the branch). */
  commits?: ReadonlyMap<string, string>;
  /** Serve the file-list API (GET /api/models/<org>/<name>/revision/<rev>). */
  api?: boolean;
}

/** Serves `repos` (id "org/name" -> folder); the map is read per request, so later additions count. */
export async function serveFakeHub(repos: ReadonlyMap<string, string>, options: FakeHubOptions = {}): Promise<FakeHub> {
  const log: FakeHub['log'] = [];
  const cors: Record<string, string> = options.cors
    ? {
        'Access-Control-Allow-Origin': '*',
        'Access-Control-Allow-Headers': 'Range',
        'Access-Control-Expose-Headers': 'Content-Length, Content-Range, Accept-Ranges, X-Error-Code, X-Repo-Commit',
      }
    : {};
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url!, 'http://x').pathname;
    log.push({ method: req.method!, path, range: req.headers.range });
    if (req.method === 'OPTIONS') return void res.writeHead(204, cors).end();
    const notFound = (code: string) => void res.writeHead(404, { ...cors, 'X-Error-Code': code }).end(code);
    const api = options.api ? /^\/api\/models\/([^/]+)\/([^/]+)\/revision\/([^/]+)$/.exec(path) : null;
    if (api) {
      const apiId = `${api[1]}/${api[2]}`;
      const apiDir = repos.get(apiId);
      if (!apiDir) return notFound('RepoNotFound');
      const sha = options.commits?.get(apiId);
      const apiRev = decodeURIComponent(api[3]);
      if (apiRev !== 'main' && !(sha !== undefined && apiRev === sha)) return notFound('RevisionNotFound');
      const entries = await readdir(apiDir, { recursive: true, withFileTypes: true });
      const siblings = entries.filter((e) => e.isFile()).map((e) => ({ rfilename: join(e.parentPath, e.name).slice(apiDir.length + 1).split('\\').join('/') }));
      const body = JSON.stringify({ id: apiId, ...(sha !== undefined && { sha }), siblings });
      return void res.writeHead(200, { ...cors, 'Content-Type': 'application/json' }).end(body);
    }
    const hub = /^\/([^/]+)\/([^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const plain = /^\/plain\/([^/]+)\/(.+)$/.exec(path);
    const id = hub ? `${hub[1]}/${hub[2]}` : plain ? `webq/${plain[1]}` : undefined;
    const dir = id && repos.get(id);
    if (!dir) return notFound('RepoNotFound');
    const commit = hub ? options.commits?.get(id!) : undefined;
    const rev = hub ? decodeURIComponent(hub[3]) : undefined;
    if (hub && rev !== 'main' && !(commit !== undefined && rev === commit)) return notFound('RevisionNotFound');
    const repoCommit: Record<string, string> = commit === undefined ? {} : { 'X-Repo-Commit': commit };
    const file = decodeURIComponent((hub ? hub[4] : plain![2]) ?? '');
    const body = await readFile(join(dir, file)).catch(() => undefined);
    if (!body) return void res.writeHead(404, { ...cors, ...repoCommit, 'X-Error-Code': 'EntryNotFound' }).end('EntryNotFound');
    if (req.method === 'HEAD') return void res.writeHead(200, { ...cors, ...repoCommit, 'Content-Length': body.length, 'Accept-Ranges': 'bytes' }).end();
    if (options.truncated?.has(`${id}/${file}`)) {
      res.writeHead(200, { ...cors, 'Content-Length': body.length });
      res.write(body.subarray(0, body.length >> 1));
      return void setTimeout(() => res.socket?.destroy(), 20);
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
    if (!m) return void res.writeHead(200, { ...cors, ...repoCommit, 'Content-Length': body.length }).end(body);
    const start = Number(m[1]);
    const end = Math.min(Number(m[2]), body.length - 1);
    res.writeHead(206, { ...cors, 'Content-Range': `bytes ${start}-${end}/${body.length}`, 'Content-Length': end - start + 1 });
    res.end(body.subarray(start, end + 1));
  };
  const server = createServer((req, res) => void handler(req, res));
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}
