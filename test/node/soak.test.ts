// A short soak (bench/lib/soak.ts, what `npm run bench -- soak` runs at full length): generate calls
// of varied lengths and options, embed batches of varied sizes, a chat that fills and truncates
// its context, load/dispose cycles. After the warm-up the GPU bytes must be exactly flat and no
// bind group or uniform buffer may be created (the calls only meet shapes seen before); the JS
// heap (after a forced collection) must not grow by more than a leak of a few KB per call would
// make it; every disposed model must leave zero bytes behind.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runSoak, type SoakSample } from '../../bench/lib/soak.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-soak-');
const MB = 2 ** 20;

describe('soak', () => {
  it('GPU bytes flat, no cache churn after the warm-up, heap bounded, zero bytes after dispose()', async () => {
    const counts = { generate: 70, embed: 280, chat: 40, load: 8 };
    const r = await runSoak({ counts, every: 35, warmup: 210, dir: join(tmp.dir, 'models') });
    const line = (s: SoakSample) => `${s.phase} ${s.calls}: GPU ${s.gpu_bytes} B, bind groups ${s.bind_groups} (+${s.bind_groups_created}), uniforms ${s.uniforms} (+${s.uniforms_created}), heap ${(s.heap_bytes / MB).toFixed(2)} MB, RSS ${(s.rss_bytes / MB).toFixed(0)} MB`;
    console.log(r.samples.map(line).join('\n'));
    const gen = r.samples.filter((s) => s.phase === 'generate');
    const emb = r.samples.filter((s) => s.phase === 'embed');
    // generate: the first 35 calls meet every prompt length and readEvery; after them nothing is new.
    for (const s of gen.slice(1)) expect([s.gpu_bytes, s.bind_groups_created, s.uniforms_created]).toEqual([gen[0].gpu_bytes, 0, 0]);
    const steady = emb.filter((s) => s.calls > 210);
    expect(steady.length).toBeGreaterThanOrEqual(2);
    for (const s of steady) expect([s.gpu_bytes, s.bind_groups_created, s.uniforms_created]).toEqual([steady[0].gpu_bytes, 0, 0]);
    // 35 generate calls or 70 embed calls between the compared samples: a leak of 30 KB per call shows.
    expect(gen.at(-1)!.heap_bytes - gen[1].heap_bytes).toBeLessThan(1 * MB);
    expect(steady.at(-1)!.heap_bytes - steady[0].heap_bytes).toBeLessThan(2 * MB);
    expect(r.dispose).toEqual({ checked: counts.load, max_bytes_left: 0 });
    const chat = r.samples.filter((s) => s.phase === 'chat');
    // A full context re-fills, it does not grow (new prompt lengths add only their small uniforms).
    expect(chat.at(-1)!.pool_bytes + chat.at(-1)!.owned_bytes).toBe(chat[0].pool_bytes + chat[0].owned_bytes);
  }, 300_000);
});
