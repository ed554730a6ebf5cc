/**
 * makeDeltaFixtures' models plus a delta whose target differs in config.json too (a key no loader
 * reads) as well as in weights: `delta-config.safetensors` in the served folder. A load that read
 * config.json of one version and model.safetensors of the other is told by the config's size and
 * the version the weights report (test/node/cache-lock*.test.ts).
 */
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BertModel } from '../../src/api/bert.ts';
import { main } from '../../src/cli/main.ts';
import { makeDeltaFixtures, type DeltaFixtures } from './delta-fixtures.ts';

export interface VersionRef {
  version: string;
  configBytes: number;
  /** Embeddings of TEXTS (q8), as plain arrays. */
  vectors: number[][];
}

export const CONFIG_DELTA = 'delta-config.safetensors';
export const TEXTS = ['the cat sat on the mat', 'stock markets fell today'];

async function cli(...argv: string[]): Promise<void> {
  let err = '';
  const code = await main(argv, { stdout: () => undefined, stderr: (t) => void (err += t) });
  if (code !== 0) throw new Error(`webq ${argv.join(' ')}: ${err}`);
}

/** `v2` is the patched folder (v1 with the config-changing delta). */
export async function makeConfigDeltaFixtures(dir: string): Promise<{ fx: DeltaFixtures; v2: string; ref: Record<'v1' | 'v2', VersionRef> }> {
  const fx = await makeDeltaFixtures(join(dir, 'fx'));
  const f2 = join(dir, 'f2-config');
  await cp(join(dir, 'fx', 'f2'), f2, { recursive: true }); // the float fine-tune makeDeltaFixtures diffs
  const config = JSON.parse(await readFile(join(f2, 'config.json'), 'utf8'));
  await writeFile(join(f2, 'config.json'), JSON.stringify({ ...config, webq_fixture_revision: 2 }, null, 2));
  await cli('diff', fx.v1, f2, '--out', join(fx.served, CONFIG_DELTA));
  const v2 = join(dir, 'v2-config');
  await cli('patch', fx.v1, join(fx.served, CONFIG_DELTA), '--out', v2);
  const ref = {} as Record<'v1' | 'v2', VersionRef>;
  for (const [k, d] of [['v1', fx.v1], ['v2', v2]] as const) {
    const m = await BertModel.load(d, { dtype: 'q8' });
    ref[k] = { version: m.version!, configBytes: (await readFile(join(d, 'config.json'))).byteLength, vectors: (await m.embed(TEXTS)).map((r) => Array.from(r)) };
    m.dispose();
  }
  if (ref.v1.configBytes === ref.v2.configBytes || ref.v1.version === ref.v2.version) throw new Error('the two versions must differ in config.json and version');
  return { fx, v2, ref };
}
