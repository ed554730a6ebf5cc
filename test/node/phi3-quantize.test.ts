// `webq quantize` on Phi-3's fused Linears (self_attn.qkv_proj, mlp.gate_up_proj): each is packed
// whole under its own name, and the loader slices the packed rows into q | k | v and gate | up.
// The file must be the model that loading the float checkpoint at the same dtype makes.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LlmModel } from '../../src/api/llm.ts';
import { main } from '../../src/cli/main.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { editCheckpoint } from '../../fixtures/checkpoint-edit.ts';
import { writeTinyLlama, type TinyLlama } from '../../fixtures/tiny-llama.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-phi3-quantize-');
const PROMPT = 'Once upon a time';
const GREEDY = { maxTokens: 8, temperature: 0, ignoreEos: true };

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { stdout: (t) => void (out += t), stderr: (t) => void (err += t), gpuContext: ctx } as Parameters<typeof main>[1]);
  return { code, out, err };
}

/** Largest |a - b| over two logit vectors of the same length. */
function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

/** Both models' logits for PROMPT and 8 greedy tokens; returns the largest logit difference. */
async function compare(a: LlmModel, b: LlmModel): Promise<number> {
  const [la, lb] = [await a.logits(PROMPT), await b.logits(PROMPT)];
  expect(la.ids).toEqual(lb.ids);
  expect((await a.generate(PROMPT, GREEDY)).tokens).toEqual((await b.generate(PROMPT, GREEDY)).tokens);
  return maxAbsDiff(la.logits, lb.logits);
}

let ctx: GpuContext;
let m: TinyLlama;
beforeAll(async () => {
  ctx = await GpuContext.create();
  m = await writeTinyLlama(join(tmp.dir, 'phi3'), { modelType: 'phi3', seed: 34, tokenizer: 'llama2' });
});
afterAll(() => ctx?.dispose());

describe('webq quantize on Phi-3 (fused qkv_proj / gate_up_proj)', () => {
  it.each(['q8', 'q4'] as const)('--dtype %s writes the fused Linears packed whole; the file loads as the float checkpoint at the same dtype does', async (dtype) => {
    const out = join(tmp.dir, `phi3-${dtype}`);
    const r = await cli('quantize', m.dir, '--dtype', dtype, '--out', out);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const info = await cli('info', '--json', out);
    expect(info.err).toBe('');
    expect(info.code).toBe(0);
    const j = JSON.parse(info.out);
    // The fused tensors are in the file under their own names, packed (not split into q/k/v).
    const names = JSON.stringify(j);
    expect(names).toContain('model.layers.0.self_attn.qkv_proj.weight');
    expect(names).toContain('model.layers.1.mlp.gate_up_proj.weight');
    expect(names).not.toContain('q_proj');
    const pre = await LlmModel.load(out, { context: ctx });
    const onLoad = await LlmModel.load(m.dir, { dtype, context: ctx });
    try {
      const d = await compare(pre, onLoad);
      console.log(`phi3 ${dtype}: max |logit(file) - logit(float at load)| = ${d.toExponential(2)}`);
      expect(d).toBeLessThanOrEqual(1e-5);
    } finally {
      pre.dispose();
      onLoad.dispose();
    }
  });

  it('refuses calibrated methods in one line naming the fused Linears, writing nothing', async () => {
    const out = join(tmp.dir, 'phi3-gptq');
    const r = await cli('quantize', m.dir, '--dtype', 'q4', '--method', 'gptq', '--out', out);
    expect(r.code).not.toBe(0);
    expect(r.err.trim().split('\n')).toHaveLength(1);
    expect(r.err).toMatch(/calibrated quantization does not yet split phi3's fused qkv_proj \/ gate_up_proj; quantize it with round-to-nearest/);
    expect((await cli('info', '--json', out)).code).not.toBe(0);
  });

  it('a delta between two quantized versions (one fused tensor changed) patches, and applies to the loaded model, as the quantized new version', async () => {
    const q1 = join(tmp.dir, 'v1-q4');
    expect((await cli('quantize', m.dir, '--dtype', 'q4', '--out', q1)).code).toBe(0);
    const v2 = await editCheckpoint(m.dir, join(tmp.dir, 'v2'), { nudge: /^model\.layers\.1\.self_attn\.qkv_proj\.weight$/ });
    const q2 = join(tmp.dir, 'v2-q4');
    expect((await cli('quantize', v2, '--dtype', 'q4', '--out', q2)).code).toBe(0);
    const delta = join(tmp.dir, 'd12.safetensors');
    const d = await cli('diff', q1, v2, '--out', delta);
    expect(d.err).toBe('');
    expect(d.code).toBe(0);
    const patched = join(tmp.dir, 'p12');
    const p = await cli('patch', q1, delta, '--out', patched);
    expect(p.err).toBe('');
    expect(p.code).toBe(0);
    const a = await LlmModel.load(patched, { context: ctx });
    const b = await LlmModel.load(q2, { context: ctx });
    const old = await LlmModel.load(q1, { context: ctx });
    try {
      expect(a.version).toBe(b.version);
      expect(await compare(a, b)).toBe(0);
      // The nudge reached the model: the old version's logits differ.
      expect(maxAbsDiff((await a.logits(PROMPT)).logits, (await old.logits(PROMPT)).logits)).toBeGreaterThan(0);
      // The same delta applied to the loaded old model: only the changed fused tensor moves, and
      // the model is the new version's.
      const applied = await old.applyDelta(delta);
      expect(applied.units).toEqual(['model.layers.1.self_attn.qkv_proj.weight']);
      expect(old.version).toBe(b.version);
      expect(await compare(old, b)).toBe(0);
    } finally {
      a.dispose();
      b.dispose();
      old.dispose();
    }
  });
});
