// Optional files of a hub model, on the main thread as in a worker: RemoteFiles.exists answers
// from the hub's file list (GET /api/models/<id>/revision/<rev>), so a file the list lacks costs no
// request (and no 404 in a browser's console); without that API it falls back to one HEAD per file.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BertModel } from '../../src/api/bert.ts';
import { hubKeySegment, openModelFiles } from '../../src/io/hub/hub.ts';
import { serveFakeHub, type FakeHub } from '../helpers/fake-hub.ts';
import { writeTinyBert } from '../../fixtures/tiny-bert.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-hub-listing-');
const COMMIT = 'c'.repeat(40);
const repos = new Map<string, string>();
let dir: string;
let listed: Set<string>;
let hub: FakeHub; // with the file-list API
let mirror: FakeHub; // without it

beforeAll(async () => {
  dir = (await writeTinyBert(join(tmp.dir, 'st'))).dir;
  // A sentence-transformers export without modules.json: one optional file present, one absent.
  await mkdir(join(dir, '1_Pooling'));
  await writeFile(join(dir, '1_Pooling/config.json'), JSON.stringify({ pooling_mode_mean_tokens: true }));
  await writeFile(join(dir, 'sentence_bert_config.json'), JSON.stringify({ max_seq_length: 8, do_lower_case: true }));
  listed = new Set((await readdir(dir, { recursive: true })).map((f) => String(f).split('\\').join('/')));
  repos.set('webq/st', dir);
  hub = await serveFakeHub(repos, { api: true, commits: new Map([['webq/st', COMMIT]]) });
  mirror = await serveFakeHub(repos);
});
afterAll(async () => {
  await hub?.close();
  await mirror?.close();
});

const since = (server: FakeHub, from: number) => server.log.slice(from).map((r) => `${r.method} ${r.path}`);

describe('hub ids: optional files from the file list', () => {
  it('asks the list once per open and nothing for the files it lacks; the absences are remembered', async () => {
    const cacheDir = join(tmp.dir, 'cache-list');
    let from = hub.log.length;
    const files = await openModelFiles('webq/st', { hubUrl: hub.url, cacheDir });
    expect(await files.exists('2_Normalize/config.json')).toBe(false);
    expect(await files.exists('modules.json')).toBe(false);
    expect(await files.exists('1_Pooling/config.json')).toBe(true);
    expect(await files.exists('config.json')).toBe(true);
    expect(since(hub, from)).toEqual(['GET /api/models/webq/st/revision/main']);
    const note = JSON.parse(await readFile(join(cacheDir, 'hubs', hubKeySegment(hub.url), 'webq', 'st', '@main.json'), 'utf8'));
    expect(note.absent).toEqual(['2_Normalize/config.json', 'modules.json']);

    from = hub.log.length;
    const again = await openModelFiles('webq/st', { hubUrl: hub.url, cacheDir });
    expect(await again.exists('modules.json')).toBe(false);
    expect(since(hub, from)).toEqual([]);

    // Without the cache, and at a commit: the list of that revision.
    from = hub.log.length;
    const bare = await openModelFiles(`webq/st@${COMMIT}`, { hubUrl: hub.url, cache: false });
    expect(await bare.exists('modules.json')).toBe(false);
    expect(await bare.exists('tokenizer.json')).toBe(true);
    expect(since(hub, from)).toEqual([`GET /api/models/webq/st/revision/${COMMIT}`]);
  });

  it('BertModel.load on the main thread requests only files the list has', async () => {
    for (const cache of [true, false]) {
      const from = hub.log.length;
      const m = await BertModel.load('webq/st', { hubUrl: hub.url, cacheDir: join(tmp.dir, 'cache-load'), cache, dtype: 'f32' });
      expect(m.maxLength).toBe(8);
      m.dispose();
      const asked = hub.log.slice(from);
      expect(asked[0]).toBeDefined();
      for (const r of asked) {
        if (r.path === '/api/models/webq/st/revision/main') continue;
        // Whole files with the cache; without it, a HEAD for the checkpoint's size and range reads.
        expect(r.path).toMatch(/^\/webq\/st\/resolve\/main\//);
        expect(listed.has(r.path.slice('/webq/st/resolve/main/'.length)), `${r.method} ${r.path}`).toBe(true);
      }
      expect(asked.filter((r) => r.path.startsWith('/api/'))).toHaveLength(1);
    }
  });

  it('a hub without the list API gets one HEAD per optional file, then none', async () => {
    const cacheDir = join(tmp.dir, 'cache-mirror');
    let from = mirror.log.length;
    const files = await openModelFiles('webq/st', { hubUrl: mirror.url, cacheDir });
    expect(await files.exists('modules.json')).toBe(false);
    expect(await files.exists('2_Normalize/config.json')).toBe(false);
    expect(await files.exists('config.json')).toBe(true);
    expect(since(mirror, from)).toEqual([
      'GET /api/models/webq/st/revision/main',
      'HEAD /webq/st/resolve/main/modules.json',
      'HEAD /webq/st/resolve/main/2_Normalize/config.json',
      'HEAD /webq/st/resolve/main/config.json',
    ]);
    from = mirror.log.length;
    expect(await (await openModelFiles('webq/st', { hubUrl: mirror.url, cacheDir })).exists('modules.json')).toBe(false);
    expect(since(mirror, from)).toEqual([]);
  });

  it('folder URLs have no list: a HEAD per optional file', async () => {
    const from = hub.log.length;
    const files = await openModelFiles(`${hub.url}/plain/st/`, { cache: false });
    expect(await files.exists('modules.json')).toBe(false);
    expect(since(hub, from)).toEqual(['HEAD /plain/st/modules.json']);
  });
});
