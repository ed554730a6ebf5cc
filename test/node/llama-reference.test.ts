/**
 * The CPU Llama reference checked against things other than itself: a second, per-token forward
 * written from the spec (hand), properties the math guarantees (causality, GQA = expanded heads,
 * RoPE's shift invariance, RMSNorm's scale invariance), and the tiny checkpoints' round trip.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WebqError } from '../../src/errors.ts';
import { openCheckpoint } from '../../src/io/safetensors/checkpoint.ts';
import { parseLlamaConfig, ropeInvFreq, type LlamaConfig } from '../../src/models/llama/llama-config.ts';
import { llamaReferenceForward, llamaReferenceGreedy, type LlamaWeightsF32 } from '../../src/reference/llama.ts';
import { writeTinyLlama, type TinyLlama, type TinyLlamaOptions } from '../../fixtures/tiny-llama.ts';
import { compare } from '../kernels/check.ts';
import { useTempDir } from '../helpers/safetensors-helpers.ts';

const tmp = useTempDir('webq-llama-');
let count = 0;

async function tiny(opts: TinyLlamaOptions = {}): Promise<{ t: TinyLlama; cfg: LlamaConfig; w: Record<string, Float32Array> }> {
  const t = await writeTinyLlama(join(tmp.dir, `m${count++}`), opts);
  return { t, cfg: parseLlamaConfig(t.config), w: { ...t.weights } };
}

const forward = llamaReferenceForward;
const IDS = [5, 17, 200, 45, 99, 3, 128, 77];

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol = 0): void {
  const c = compare(got, want, atol, rtol);
  expect(c.ok, `max |diff| ${c.maxAbs}\n${c.mismatches.join('\n')}`).toBe(true);
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const rows = (logits: Float32Array, V: number, from: number, to: number) => logits.subarray(from * V, to * V);

/**
 * A second forward, written per token with number[] vectors straight from the HF definitions:
 * complex-number RoPE with inverse frequencies from `invFreq` (default theta^(-2i/D), computed
 * here), KV head h * nkv / nh, the window as "keys t-W+1..t". Any number of layers.
 */
function handForward(cfg: LlamaConfig, w: LlamaWeightsF32, ids: number[], invFreq = (i: number) => Math.pow(cfg.ropeTheta, (-2 * i) / cfg.headDim)): number[][] {
  const { hiddenSize: H, numHeads: nh, numKvHeads: nkv, headDim: D, rmsNormEps: eps } = cfg;
  const mv = (W: Float32Array, b: Float32Array | undefined, x: number[]) =>
    Array.from({ length: W.length / x.length }, (_, o) => x.reduce((s, xi, i) => s + xi * W[o * x.length + i], b ? b[o] : 0));
  const rms = (x: number[], g: Float32Array) => {
    const r = Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + eps);
    return x.map((v, i) => (v / r) * g[i]);
  };
  const split = (v: number[], n: number) => Array.from({ length: n }, (_, h) => v.slice(h * D, (h + 1) * D));
  const rotate = (x: number[], p: number) => {
    // (x[i] + i x[i + D/2]) * e^(i p f_i)
    const out = x.slice();
    for (let i = 0; i < D / 2; i++) {
      const [re, im, c, s] = [x[i], x[i + D / 2], Math.cos(p * invFreq(i)), Math.sin(p * invFreq(i))];
      out[i] = re * c - im * s;
      out[i + D / 2] = re * s + im * c;
    }
    return out;
  };
  let xs = ids.map((id) => Array.from(w['model.embed_tokens.weight'].subarray(id * H, (id + 1) * H)));
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = (n: string) => w[`model.layers.${l}.${n}`];
    const n1 = xs.map((x) => rms(x, p('input_layernorm.weight')));
    const qk = (proj: string, heads: number, norm: string) =>
      n1.map((x, t) => split(mv(p(`${proj}.weight`), p(`${proj}.bias`), x), heads).map((h) => rotate(cfg.qkNorm ? rms(h, p(norm)) : h, t)));
    const q = qk('self_attn.q_proj', nh, 'self_attn.q_norm.weight');
    const k = qk('self_attn.k_proj', nkv, 'self_attn.k_norm.weight');
    const v = n1.map((x) => split(mv(p('self_attn.v_proj.weight'), p('self_attn.v_proj.bias'), x), nkv));
    const W = cfg.slidingWindow[l];
    xs = xs.map((x, t) => {
      const ctx: number[] = [];
      for (let h = 0; h < nh; h++) {
        const kv = Math.floor((h * nkv) / nh);
        const keys = Array.from({ length: t + 1 }, (_, j) => j).filter((j) => W === 0 || j > t - W);
        const s = keys.map((j) => q[t][h].reduce((a, qi, d) => a + qi * k[j][kv][d], 0) / Math.sqrt(D));
        const e = s.map((si) => Math.exp(si - Math.max(...s)));
        const z = e.reduce((a, b) => a + b, 0);
        for (let d = 0; d < D; d++) ctx.push(keys.reduce((a, j, n) => a + (e[n] / z) * v[j][kv][d], 0));
      }
      const a = x.map((xi, i) => xi + mv(p('self_attn.o_proj.weight'), p('self_attn.o_proj.bias'), ctx)[i]);
      const n2 = rms(a, p('post_attention_layernorm.weight'));
      const g = mv(p('mlp.gate_proj.weight'), p('mlp.gate_proj.bias'), n2);
      const u = mv(p('mlp.up_proj.weight'), p('mlp.up_proj.bias'), n2);
      const m = mv(p('mlp.down_proj.weight'), p('mlp.down_proj.bias'), g.map((gi, i) => (gi / (1 + Math.exp(-gi))) * u[i]));
      return a.map((ai, i) => ai + m[i]);
    });
  }
  const head = cfg.tieWordEmbeddings ? w['model.embed_tokens.weight'] : w['lm_head.weight'];
  return xs.map((x) => mv(head, undefined, rms(x, w['model.norm.weight'])));
}

describe('reference vs a hand-written per-token forward', () => {
  const cases: [string, TinyLlamaOptions][] = [
    ['llama with attention and MLP biases', { attentionBias: true, mlpBias: true }],
    ['mistral with a 3-token window', { modelType: 'mistral', slidingWindow: 3 }],
    ['qwen2 (q/k/v biases, window on layer 1 only)', { modelType: 'qwen2', slidingWindow: 2, tied: true }],
    ['qwen3 (q_norm, k_norm, head_dim != hidden / heads)', { modelType: 'qwen3', headDim: 12, kvHeads: 1 }],
  ];
  for (const [name, opts] of cases) {
    it(name, async () => {
      const { cfg, w } = await tiny({ hidden: 48, intermediate: 80, vocab: 96, ...opts });
      const ids = IDS.map((i) => i % 96).slice(0, 6);
      // At T=1 one key gets weight 1: the output is v, whatever q, k and RoPE do.
      // (1e-6: the reference returns f32 logits.)
      expectClose(forward(cfg, w, ids.slice(0, 1)), handForward(cfg, w, ids.slice(0, 1)).flat(), 1e-6, 1e-6);
      // At T=6 RoPE, causal masking, windows, GQA and the q/k norms all show. The hand side uses
      // f64 inverse frequencies, the reference f32 ones as transformers: ~1e-7 relative apart.
      expectClose(forward(cfg, w, ids), handForward(cfg, w, ids).flat(), 1e-5, 1e-5);
    });
  }

  it('linear rope_scaling divides every inverse frequency by the factor', async () => {
    const { cfg, w } = await tiny({ hidden: 32, ropeScaling: { rope_type: 'linear', factor: 4 } });
    expect(cfg.ropeScaling).toEqual({ type: 'linear', factor: 4 });
    const hand = handForward(cfg, w, IDS, (i) => Math.pow(cfg.ropeTheta, (-2 * i) / cfg.headDim) / 4).flat();
    expectClose(forward(cfg, w, IDS), hand, 1e-5, 1e-5);
    expect(maxDiff(forward({ ...cfg, ropeScaling: null }, w, IDS), hand)).toBeGreaterThan(1e-2);
  });
});

describe('properties of the reference', () => {
  it('is causal: logits at t ignore later tokens and the sequence length', async () => {
    const { cfg, w } = await tiny();
    const V = cfg.vocabSize;
    const other = [...IDS.slice(0, 4), 11, 250, 6, 19];
    const a = forward(cfg, w, IDS);
    const b = forward(cfg, w, other);
    expectClose(rows(b, V, 0, 4), rows(a, V, 0, 4), 1e-6);
    for (let t = 4; t < 8; t++) expect(maxDiff(rows(a, V, t, t + 1), rows(b, V, t, t + 1))).toBeGreaterThan(0.1);
    expectClose(forward(cfg, w, IDS.slice(0, 5)), rows(a, V, 0, 5), 1e-6);
  });

  it('GQA equals full multi-head attention with each KV head repeated (repeat_kv order)', async () => {
    for (const modelType of ['llama', 'qwen3'] as const) {
      const { cfg, w } = await tiny({ modelType, heads: 4, kvHeads: 2, attentionBias: true });
      const { numHeads: nh, numKvHeads: nkv, headDim: D, hiddenSize: H } = cfg;
      const expand = (kvOf: (h: number) => number) => {
        const e = { ...w };
        for (let l = 0; l < cfg.numLayers; l++) {
          for (const proj of ['k_proj', 'v_proj']) {
            const name = `model.layers.${l}.self_attn.${proj}`;
            const W = new Float32Array(nh * D * H);
            const b = new Float32Array(nh * D);
            for (let h = 0; h < nh; h++) {
              W.set(w[`${name}.weight`].subarray(kvOf(h) * D * H, (kvOf(h) + 1) * D * H), h * D * H);
              b.set(w[`${name}.bias`].subarray(kvOf(h) * D, (kvOf(h) + 1) * D), h * D);
            }
            [e[`${name}.weight`], e[`${name}.bias`]] = [W, b];
          }
        }
        return forward({ ...cfg, numKvHeads: nh }, e, IDS);
      };
      const gqa = forward(cfg, w, IDS);
      expectClose(gqa, expand((h) => Math.floor(h / (nh / nkv))), 1e-9, 1e-9);
      // The same test with the other pairing (h mod nkv) must fail, or it proves nothing.
      expect(maxDiff(gqa, expand((h) => h % nkv))).toBeGreaterThan(1e-2);
    }
  });

  it('RoPE sees relative positions only: with a window, shifting the sequence right keeps the logits', async () => {
    // Two layers with window 3: position t depends on tokens t-4..t and their relative offsets.
    // (RoPE's value at position 0 cannot be seen in logits at all: only differences of positions
    // enter q.k, so an offset of every position is invisible. The hand forward checks the angles.)
    const { cfg, w } = await tiny({ modelType: 'mistral', slidingWindow: 3 });
    const V = cfg.vocabSize;
    const shift = [9, 250, 33, 140, 61];
    const a = forward(cfg, w, IDS);
    const b = forward(cfg, w, [...shift, ...IDS]);
    expectClose(rows(b, V, shift.length + 4, shift.length + 8), rows(a, V, 4, 8), 1e-9, 1e-9);
    // Rows 0..3 of the short sequence miss tokens the shifted one sees (row 3 only one, via two hops).
    for (let t = 0; t < 4; t++) expect(maxDiff(rows(b, V, shift.length + t, shift.length + t + 1), rows(a, V, t, t + 1))).toBeGreaterThan(1e-3);
    // Without the window the prefix is seen, so the same rows change.
    const full = { ...cfg, slidingWindow: [0, 0] };
    expect(maxDiff(rows(forward(full, w, [...shift, ...IDS]), V, 9, 13), rows(forward(full, w, IDS), V, 4, 8))).toBeGreaterThan(1e-2);
  });

  it('a tied LM head is the embedding table; an untied one is read row by row', async () => {
    const { t, cfg, w } = await tiny({ tied: true });
    expect(t.weights['lm_head.weight']).toBeUndefined();
    const V = cfg.vocabSize;
    const tied = forward(cfg, w, IDS);
    const untied = { ...w, 'lm_head.weight': w['model.embed_tokens.weight'].slice() };
    expectClose(forward({ ...cfg, tieWordEmbeddings: false }, untied, IDS), tied, 0);
    // Changing row 7 of lm_head changes logit column 7 and nothing else.
    for (let i = 7 * cfg.hiddenSize; i < 8 * cfg.hiddenSize; i++) untied['lm_head.weight'][i] += 0.5;
    const moved = forward({ ...cfg, tieWordEmbeddings: false }, untied, IDS);
    for (let r = 0; r < IDS.length; r++) {
      for (let v = 0; v < V; v++) {
        const d = Math.abs(moved[r * V + v] - tied[r * V + v]);
        if (v === 7) expect(d).toBeGreaterThan(1e-3);
        else expect(d).toBe(0);
      }
    }
  });

  it('Qwen3 q_norm / k_norm are per-head RMSNorms: q/k projection scale is normalised away, the norm weights are not', async () => {
    const { cfg, w } = await tiny({ modelType: 'qwen3' });
    const base = forward(cfg, w, IDS);
    const D = cfg.headDim;
    const H = cfg.hiddenSize;
    const scaled = (name: string, s: number, from = 0, to = w[name].length) => {
      const a = w[name].slice();
      for (let i = from; i < to; i++) a[i] *= s;
      return { ...w, [name]: a };
    };
    // Scaling only head 1's rows of q_proj, or all of k_proj: unchanged up to eps (1e-6).
    expectClose(forward(cfg, scaled('model.layers.0.self_attn.q_proj.weight', 3, D * H, 2 * D * H), IDS), base, 1e-4, 1e-4);
    expectClose(forward(cfg, scaled('model.layers.1.self_attn.k_proj.weight', 0.25), IDS), base, 1e-4, 1e-4);
    for (const n of ['q_norm', 'k_norm']) expect(maxDiff(forward(cfg, scaled(`model.layers.0.self_attn.${n}.weight`, 2), IDS), base)).toBeGreaterThan(1e-2);
    // Without q/k norms (Llama) the same q_proj scaling sharpens attention and moves the logits.
    const llama = { ...cfg, qkNorm: false };
    expect(maxDiff(forward(llama, scaled('model.layers.0.self_attn.q_proj.weight', 3, D * H, 2 * D * H), IDS), forward(llama, w, IDS))).toBeGreaterThan(1e-2);
  });

  it('Qwen2 q/k/v biases and Llama o/MLP biases are all used', async () => {
    const check = async (opts: TinyLlamaOptions, names: string[]) => {
      const { cfg, w } = await tiny(opts);
      const base = forward(cfg, w, IDS);
      for (const n of names) {
        const key = `model.layers.0.${n}.bias`;
        expect(w[key], key).toBeDefined();
        const moved = forward(cfg, { ...w, [key]: new Float32Array(w[key].length) }, IDS);
        expect(maxDiff(moved, base), key).toBeGreaterThan(1e-3);
      }
    };
    await check({ modelType: 'qwen2' }, ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj']);
    await check({ attentionBias: true, mlpBias: true }, ['self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj']);
  });

  it('sliding window: W >= T is no window, W = T-1 changes only the last row, W = 1 is the token alone', async () => {
    const { cfg, w } = await tiny({ modelType: 'mistral', slidingWindow: 8 });
    const V = cfg.vocabSize;
    expect(cfg.slidingWindow).toEqual([8, 8]);
    const none = forward({ ...cfg, slidingWindow: [0, 0] }, w, IDS);
    expectClose(forward(cfg, w, IDS), none, 0);
    expectClose(forward({ ...cfg, slidingWindow: [100, 100] }, w, IDS), none, 0);
    const w7 = forward({ ...cfg, slidingWindow: [7, 7] }, w, IDS);
    expectClose(rows(w7, V, 0, 7), rows(none, V, 0, 7), 0);
    expect(maxDiff(rows(w7, V, 7, 8), rows(none, V, 7, 8))).toBeGreaterThan(1e-2);
    // W = 1: a query sees only itself, so attention returns its own v at every layer.
    const w1 = forward({ ...cfg, slidingWindow: [1, 1] }, w, IDS);
    for (let t = 0; t < IDS.length; t++) expectClose(rows(w1, V, t, t + 1), forward(cfg, w, [IDS[t]]), 1e-9, 1e-9);
  });

  it('greedy appends the argmax, lowest index on ties', async () => {
    const { cfg, w } = await tiny();
    const [first] = llamaReferenceGreedy(cfg, w, IDS, 1);
    const H = cfg.hiddenSize;
    const head = w['lm_head.weight'];
    const tie = (j: number) => {
      const h = head.slice();
      h.copyWithin(j * H, first * H, (first + 1) * H);
      return llamaReferenceGreedy(cfg, { ...w, 'lm_head.weight': h }, IDS, 1)[0];
    };
    expect(tie(first - 1)).toBe(first - 1);
    expect(tie(first + 1)).toBe(first);
    const three = llamaReferenceGreedy(cfg, w, IDS, 3);
    expect(three[0]).toBe(first);
    expect(llamaReferenceGreedy(cfg, w, [...IDS, ...three.slice(0, 2)], 1)).toEqual([three[2]]);
  });

  it('names a missing weight, a wrong size and an id outside the vocabulary', async () => {
    const { cfg, w } = await tiny({ omit: ['model.layers.1.mlp.up_proj.weight'] });
    expect(() => forward(cfg, w, IDS)).toThrow(/no weight "model\.layers\.1\.mlp\.up_proj\.weight"/);
    try {
      forward(cfg, w, IDS);
    } catch (e) {
      expect((e as WebqError).code).toBe('REFERENCE_WEIGHT_MISSING');
    }
    const full = (await tiny()).w;
    expect(() => forward(cfg, { ...full, 'model.norm.weight': new Float32Array(3) }, IDS)).toThrow(/"model\.norm\.weight" has 3 elements, expected 64/);
    expect(() => forward(cfg, full, [1, 256])).toThrow(/ids\[1\] = 256 is outside the vocabulary/);
    expect(() => forward(cfg, full, [])).toThrow(/empty/);
  });
});

describe('ropeInvFreq', () => {
  it("llama3 scaling with Llama-3.1-8B's parameters follows Meta's apply_scaling", () => {
    const cfg = parseLlamaConfig({
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: 4096,
      intermediate_size: 14336,
      num_attention_heads: 32,
      num_hidden_layers: 32,
      num_key_value_heads: 8,
      max_position_embeddings: 131072,
      rope_theta: 500000.0,
      rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
      vocab_size: 128256,
    });
    expect(cfg.headDim).toBe(128);
    const got = ropeInvFreq(cfg);
    // Meta's llama/model.py apply_scaling, written out in f64.
    const [factor, low, high, old] = [8, 1, 4, 8192];
    const base = Array.from({ length: 64 }, (_, i) => 1 / Math.pow(500000, (2 * i) / 128));
    const want = base.map((f) => {
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < old / high) return f;
      if (wavelen > old / low) return f / factor;
      const smooth = (old / wavelen - low) / (high - low);
      return ((1 - smooth) * f) / factor + smooth * f;
    });
    expectClose(got, want, 0, 1e-6);
    // wavelen = 2 pi 500000^(i/64): below 2048 for i <= 28, above 8192 for i >= 35.
    for (let i = 0; i <= 28; i++) expect(got[i] / base[i]).toBeCloseTo(1, 6);
    for (let i = 35; i < 64; i++) expect(got[i] / base[i]).toBeCloseTo(1 / 8, 6);
    for (let i = 29; i <= 34; i++) expect(got[i] / base[i]).toSatisfy((r: number) => r > 1 / 8 && r < 1);
    expect(got[0]).toBe(1);
  });
});

describe('writeTinyLlama', () => {
  const hfNames = (cfg: LlamaConfig, t: TinyLlama) => {
    const names = ['model.embed_tokens.weight', 'model.norm.weight', ...(cfg.tieWordEmbeddings ? [] : ['lm_head.weight'])];
    for (let l = 0; l < cfg.numLayers; l++) {
      const b = `model.layers.${l}`;
      names.push(`${b}.input_layernorm.weight`, `${b}.post_attention_layernorm.weight`);
      for (const p of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) names.push(`${b}.self_attn.${p}.weight`);
      for (const p of ['gate_proj', 'up_proj', 'down_proj']) names.push(`${b}.mlp.${p}.weight`);
      if (cfg.qkvBias) for (const p of ['q_proj', 'k_proj', 'v_proj']) names.push(`${b}.self_attn.${p}.bias`);
      if (cfg.oBias) names.push(`${b}.self_attn.o_proj.bias`);
      if (cfg.mlpBias) for (const p of ['gate_proj', 'up_proj', 'down_proj']) names.push(`${b}.mlp.${p}.bias`);
      if (cfg.qkNorm) names.push(`${b}.self_attn.q_norm.weight`, `${b}.self_attn.k_norm.weight`);
    }
    expect(Object.keys(t.weights).sort()).toEqual(names.sort());
  };

  for (const [dtype, sharded] of [['F32', false], ['F16', true], ['BF16', false]] as const) {
    it(`round-trips ${dtype}${sharded ? ' (sharded)' : ''}: the file holds exactly the returned weights`, async () => {
      const { t, cfg } = await tiny({ modelType: 'qwen2', dtype, sharded });
      hfNames(cfg, t);
      expect(t.config.torch_dtype).toBe({ F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype]);
      expect(t.files).toContain(sharded ? 'model.safetensors.index.json' : 'model.safetensors');
      const store = await openCheckpoint(t.dir);
      try {
        expect(store.tensors.map((x) => x.name).sort()).toEqual(Object.keys(t.weights).sort());
        for (const info of store.tensors) {
          expect(info.dtype).toBe(dtype);
          expect(info.shape.reduce((a, b) => a * b, 1)).toBe(t.weights[info.name].length);
          expect(await store.readAs(info.name, 'f32')).toEqual(t.weights[info.name]);
        }
        expect(store.get('model.layers.0.self_attn.k_proj.weight')?.shape).toEqual([cfg.numKvHeads * cfg.headDim, cfg.hiddenSize]);
        expect(store.get('model.layers.1.mlp.down_proj.weight')?.shape).toEqual([cfg.hiddenSize, cfg.intermediateSize]);
      } finally {
        await store.close();
      }
    });
  }

  it('writes a config.json parseLlamaConfig reads back, for every model type', async () => {
    const want = {
      llama: { architecture: 'LlamaForCausalLM', rmsNormEps: 1e-5, qkvBias: false, qkNorm: false, slidingWindow: [0, 0] },
      mistral: { architecture: 'MistralForCausalLM', rmsNormEps: 1e-5, qkvBias: false, qkNorm: false, slidingWindow: [0, 0] },
      qwen2: { architecture: 'Qwen2ForCausalLM', rmsNormEps: 1e-6, qkvBias: true, qkNorm: false, slidingWindow: [0, 0] },
      qwen3: { architecture: 'Qwen3ForCausalLM', rmsNormEps: 1e-6, qkvBias: false, qkNorm: true, slidingWindow: [0, 0] },
    } as const;
    for (const modelType of ['llama', 'mistral', 'qwen2', 'qwen3'] as const) {
      const { t, cfg } = await tiny({ modelType, tied: modelType === 'qwen2' });
      hfNames(cfg, t);
      const text = await readFile(join(t.dir, 'config.json'), 'utf8');
      expect(parseLlamaConfig(text)).toEqual(cfg);
      expect(cfg).toMatchObject({ modelType, ...want[modelType], hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16 });
      expect(cfg).toMatchObject({ intermediateSize: 128, vocabSize: 256, maxPositions: 256, ropeTheta: 10000, ropeScaling: null, bosTokenId: 1, eosTokenIds: [2] });
      expect(cfg.tieWordEmbeddings).toBe(modelType === 'qwen2');
      expect('head_dim' in t.config).toBe(modelType !== 'qwen2');
    }
    const q2 = await tiny({ modelType: 'qwen2', slidingWindow: 4, layers: 4 });
    expect(q2.t.config).toMatchObject({ use_sliding_window: true, sliding_window: 4, max_window_layers: 2 });
    expect(q2.cfg.slidingWindow).toEqual([0, 0, 4, 4]);
    expect((await tiny({ modelType: 'qwen3', attentionBias: true })).cfg).toMatchObject({ qkvBias: true, oBias: true });
    const bad = await writeTinyLlama(join(tmp.dir, 'bad'), { extraConfig: { hidden_act: 'gelu' } });
    expect(bad.config.hidden_act).toBe('gelu');
    expect(() => parseLlamaConfig(bad.config)).toThrow(/hidden_act "gelu"/);
  });

  it('copies the real tokenizers with matching vocab size and special ids', async () => {
    const llama = await tiny({ tokenizer: 'llama2', hidden: 16, heads: 2, kvHeads: 1, intermediate: 32, generationConfig: { do_sample: false } });
    expect(llama.cfg).toMatchObject({ vocabSize: 32000, bosTokenId: 1, eosTokenIds: [2] });
    expect(llama.t.files).toEqual(expect.arrayContaining(['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']));
    expect(JSON.parse(await readFile(join(llama.t.dir, 'generation_config.json'), 'utf8'))).toEqual({ do_sample: false });
    const qwen = await tiny({ modelType: 'qwen3', tokenizer: 'qwen3', hidden: 16, heads: 2, kvHeads: 1, headDim: 8, intermediate: 32, tied: true, chatTemplate: '{{ x }}' });
    expect(qwen.cfg).toMatchObject({ vocabSize: 151680, bosTokenId: 151643, eosTokenIds: [151645] }); // 151669 tokens, rounded up
    const tc = JSON.parse(await readFile(join(qwen.t.dir, 'tokenizer_config.json'), 'utf8'));
    expect(tc).toMatchObject({ chat_template: '{{ x }}', eos_token: '<|im_end|>' });
    expect(llamaReferenceGreedy(qwen.cfg, qwen.w, [151644, 872], 2).every((id) => id >= 0 && id < 151680)).toBe(true);
  });

  it('has massive channels and outlier weight columns, and still decodes varied tokens', async () => {
    const colRms = (m: Float32Array, n: number) => {
      const s = new Float64Array(n);
      for (let i = 0; i < m.length; i++) s[i % n] += m[i] ** 2;
      return Array.from(s, (v) => Math.sqrt(v / (m.length / n)));
    };
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    const { t, cfg, w } = await tiny();
    expect(t.outlierChannels).toHaveLength(3);
    const emb = colRms(w['model.embed_tokens.weight'], 64);
    for (const c of t.outlierChannels) expect(emb[c] / median(emb)).toBeGreaterThan(15);
    const q = colRms(w['model.layers.0.self_attn.q_proj.weight'], 64);
    expect(q.filter((r) => r > 2.5 * median(q))).toHaveLength(2);
    const plain = await tiny({ outliers: false });
    expect(plain.t.outlierChannels).toEqual([]);
    expect(Math.max(...colRms(plain.w['model.embed_tokens.weight'], 64)) / median(colRms(plain.w['model.embed_tokens.weight'], 64))).toBeLessThan(2);
    expect(plain.w['model.norm.weight']).toEqual(w['model.norm.weight']); // same draws otherwise

    for (const modelType of ['llama', 'mistral', 'qwen2', 'qwen3'] as const) {
      for (const tied of [false, true]) {
        const m = modelType === 'llama' && !tied ? { cfg, w } : await tiny({ modelType, tied });
        const out = llamaReferenceGreedy(m.cfg, m.w, [1, 17, 200], 24);
        const what = `${modelType} tied=${tied}: ${out.join(' ')}`;
        expect(new Set(out).size, what).toBeGreaterThanOrEqual(2);
        // Not stuck on one token: random weights do repeat a token for a stretch, never for half the run; at least two distinct.
        let run = 1;
        let longest = 1;
        for (let i = 1; i < out.length; i++) longest = Math.max(longest, (run = out[i] === out[i - 1] ? run + 1 : 1));
        expect(longest, what).toBeLessThan(out.length / 2);
        // The context matters, not just the last token: a lone last token predicts differently.
        const V = m.cfg.vocabSize;
        const alone = forward(m.cfg, m.w, [out[10]]);
        expect(maxDiff(rows(forward(m.cfg, m.w, [1, 17, 200, ...out.slice(0, 11)]), V, 13, 14), alone), what).toBeGreaterThan(0.5);
      }
    }
  });
});
