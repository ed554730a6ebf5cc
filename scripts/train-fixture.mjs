#!/usr/bin/env node
/**
 * Trains the test fixture test/fixtures/trained-llama/: a small LlamaForCausalLM (Hugging Face
 * layout: config.json, model.safetensors, tokenizer.json) on stories from a template generator
 * (fixture/stories.mjs), so the quantization tests see weights and activations shaped by training
 * rather than drawn at random. Plain Node, no dependencies past the repo's own: the forward and its
 * backward pass are written out in fixture/llama-math.mjs, the optimizer is Adam, the seed fixed.
 *
 *   node scripts/train-fixture.mjs [--steps N] [--out DIR] [--check]
 *
 * --check compares the backward pass with finite differences on a tiny model and exits. Training
 * prints the held-out loss as it goes; at the end it writes the model, the tokenizer, a held-out
 * text (stories from another seed, never trained on) and train-log.json (the losses and the
 * activation statistics the fixture's README quotes).
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { backward, forward, paramShapes, ropeTable } from './fixture/llama-math.mjs';
import { rng, stories } from './fixture/stories.mjs';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const OUT = opt('--out', 'test/fixtures/trained-llama');
const STEPS = Number(opt('--steps', 1000));
const SEED = 20;

/** The model: ~220K parameters, 4 layers, grouped-query attention (4 query heads, 2 KV heads). */
const C = { V: 512, H: 64, L: 4, nh: 4, nkv: 2, d: 16, I: 160, eps: 1e-5, theta: 10000, ctx: 256 };
const T = 128; // training sequence length
const B = 12; // sequences per step
const LR = 3e-3;
const WARMUP = 60;

const SPECIAL = ['<unk>', '<s>', '</s>'];

/** Words of the corpus (BertPreTokenizer splits on spaces and punctuation), then letters for anything else. */
function buildVocab(texts) {
  const count = new Map();
  for (const t of texts) for (const w of t.match(/[A-Za-z0-9]+|[^\sA-Za-z0-9]/g)) count.set(w, (count.get(w) ?? 0) + 1);
  const words = [...count.keys()].sort((a, b) => count.get(b) - count.get(a) || (a < b ? -1 : 1));
  const vocab = [...SPECIAL];
  const add = (w) => !vocab.includes(w) && vocab.push(w);
  words.forEach(add);
  // Fallback pieces so any ASCII word still tokenizes (WordPiece: a first piece, then ##pieces).
  for (const ch of 'abcdefghijklmnopqrstuvwxyz') add(ch);
  for (const ch of 'abcdefghijklmnopqrstuvwxyz') add(`##${ch}`);
  for (const ch of '0123456789') add(ch);
  if (vocab.length > C.V) throw new Error(`vocabulary of ${vocab.length} does not fit ${C.V}`);
  for (let i = 0; vocab.length < C.V; i++) add(`<extra_${i}>`);
  return vocab;
}

function tokenizerFiles(vocab) {
  const special = (t, i) => ({ id: i, content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIAL.map(special),
    normalizer: null,
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '<unk>', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: Object.fromEntries(vocab.map((t, i) => [t, i])) },
  };
  const config = { tokenizer_class: 'PreTrainedTokenizerFast', bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', model_max_length: C.ctx, clean_up_tokenization_spaces: true };
  return { json, config };
}

function normal(rand) {
  const u = Math.max(rand(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

function initParams(c, rand) {
  const P = {};
  for (const [name, shape] of Object.entries(paramShapes(c))) {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    if (shape.length === 1) a.fill(1);
    else {
      // GPT-2's init: std 0.02, the layers' output projections scaled down by sqrt(2 L).
      const std = /o_proj|down_proj/.test(name) ? 0.02 / Math.sqrt(2 * c.L) : 0.02;
      for (let i = 0; i < n; i++) a[i] = std * normal(rand);
    }
    P[name] = a;
  }
  return P;
}

/** Finite-difference check of backward() on a tiny model. */
function gradCheck() {
  const c = { V: 23, H: 8, L: 2, nh: 4, nkv: 2, d: 2, I: 12, eps: 1e-5, theta: 10000 };
  const rand = rng(7);
  const P = initParams(c, rand);
  for (const a of Object.values(P)) for (let i = 0; i < a.length; i++) a[i] += 0.3 * normal(rand);
  const Bc = 2;
  const Tc = 5;
  const ids = Int32Array.from({ length: Bc * Tc }, () => Math.floor(rand() * c.V));
  const tg = Int32Array.from({ length: Bc * Tc }, (_, i) => (i % 4 === 3 ? -1 : Math.floor(rand() * c.V)));
  const tab = ropeTable(Tc, c.d, c.theta);
  const f = forward(c, P, ids, tg, Bc, Tc, tab, true);
  const G = backward(c, P, ids, Bc, Tc, tab, f.cache);
  let worst = 0;
  for (const [name, a] of Object.entries(P)) {
    for (let t = 0; t < 4; t++) {
      const i = Math.floor(rand() * a.length);
      const old = a[i];
      const h = 1e-2;
      a[i] = old + h;
      const lp = forward(c, P, ids, tg, Bc, Tc, tab, false).loss;
      a[i] = old - h;
      const lm = forward(c, P, ids, tg, Bc, Tc, tab, false).loss;
      a[i] = old;
      const num = (lp - lm) / (2 * h);
      const err = Math.abs(num - G[name][i]) / Math.max(1e-3, Math.abs(num) + Math.abs(G[name][i]));
      worst = Math.max(worst, err);
      if (err > 2e-2) console.log(`${name}[${i}]: numeric ${num.toExponential(4)} analytic ${G[name][i].toExponential(4)}`);
    }
  }
  console.log(`gradient check: worst relative error ${worst.toExponential(2)}`);
  return worst < 2e-2;
}

/** The token stream of `texts` (each story: <s> words </s>). */
function encodeAll(tok, texts) {
  const out = [];
  for (const t of texts) {
    out.push(...tok.encode(t).ids);
    out.push(2);
  }
  return Int32Array.from(out);
}

/** Mean loss over the held-out stream in windows of T. */
function evalLoss(P, stream, tab, windows = 24) {
  let loss = 0;
  let n = 0;
  for (let w = 0; w < windows && (w + 1) * T + 1 <= stream.length; w++) {
    const ids = stream.subarray(w * T, w * T + T);
    const tg = stream.subarray(w * T + 1, w * T + T + 1);
    const r = forward(C, P, ids, tg, 1, T, tab, false);
    loss += r.loss * r.count;
    n += r.count;
  }
  return loss / n;
}

/** Per hidden channel RMS of the residual stream after each layer, and how far the largest stands out. */
function activationStats(P, stream, tab) {
  const ids = stream.subarray(0, T);
  const tg = stream.subarray(1, T + 1);
  const r = forward(C, P, ids, tg, 1, T, tab, true);
  const layers = r.cache.saved.map((s, l) => {
    const x = l + 1 < C.L ? r.cache.saved[l + 1].x : r.cache.x;
    const rms = new Float64Array(C.H);
    for (let t = 0; t < T; t++) for (let h = 0; h < C.H; h++) rms[h] += x[t * C.H + h] ** 2 / T;
    const v = Array.from(rms, Math.sqrt).sort((a, b) => a - b);
    // The MLP's input (the post-attention norm's output): kurtosis of its channels' magnitudes.
    const h2 = s.h2;
    const ch = new Float64Array(C.H);
    for (let t = 0; t < T; t++) for (let h = 0; h < C.H; h++) ch[h] += Math.abs(h2[t * C.H + h]) / T;
    const c2 = Array.from(ch).sort((a, b) => a - b);
    return { layer: l, residualMaxOverMedianRms: v[C.H - 1] / v[C.H >> 1], mlpInputMaxOverMedianMeanAbs: c2[C.H - 1] / c2[C.H >> 1] };
  });
  const kurt = (a) => {
    let m = 0;
    for (const v of a) m += v / a.length;
    let m2 = 0;
    let m4 = 0;
    for (const v of a) [m2, m4] = [m2 + (v - m) ** 2 / a.length, m4 + (v - m) ** 4 / a.length];
    return m4 / (m2 * m2);
  };
  const weights = Object.fromEntries(Object.entries(P).filter(([k]) => /layers\.(0|3)\..*proj/.test(k)).map(([k, a]) => [k, Number(kurt(a).toFixed(2))]));
  return { layers, weightKurtosis: weights };
}

function safetensors(P, shapes) {
  const header = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const [name, shape] of Object.entries(shapes)) {
    header[name] = { dtype: 'F32', shape, data_offsets: [off, off + P[name].byteLength] };
    off += P[name].byteLength;
  }
  let json = JSON.stringify(header);
  while ((json.length + 8) % 8) json += ' ';
  const buf = Buffer.alloc(8 + json.length + off);
  buf.writeBigUInt64LE(BigInt(json.length), 0);
  buf.write(json, 8, 'latin1');
  let p = 8 + json.length;
  for (const name of Object.keys(shapes)) {
    Buffer.from(P[name].buffer, P[name].byteOffset, P[name].byteLength).copy(buf, p);
    p += P[name].byteLength;
  }
  return buf;
}

async function main() {
  if (args.includes('--check')) process.exit(gradCheck() ? 0 : 1);
  const train = stories(SEED, 12000);
  const heldout = stories(SEED + 1, 200);
  const vocab = buildVocab([...train, ...heldout]);
  const tf = tokenizerFiles(vocab);
  const tok = new Tokenizer(tf.json, tf.config);
  const stream = encodeAll(tok, train);
  const held = encodeAll(tok, heldout);
  console.log(`vocabulary ${vocab.length}, training tokens ${stream.length}, held-out tokens ${held.length}`);
  const tab = ropeTable(T, C.d, C.theta);
  const rand = rng(SEED);
  const P = initParams(C, rand);
  const names = Object.keys(P);
  const nParams = names.reduce((s, k) => s + P[k].length, 0);
  console.log(`parameters ${nParams}; uniform loss ${Math.log(C.V).toFixed(3)} (perplexity ${C.V})`);
  const mAdam = Object.fromEntries(names.map((k) => [k, new Float32Array(P[k].length)]));
  const vAdam = Object.fromEntries(names.map((k) => [k, new Float32Array(P[k].length)]));
  const [b1, b2, epsA, wd] = [0.9, 0.95, 1e-8, 0.01];
  const log = [];
  const t0 = Date.now();
  const ids = new Int32Array(B * T);
  const tg = new Int32Array(B * T);
  for (let step = 1; step <= STEPS; step++) {
    for (let b = 0; b < B; b++) {
      const at = Math.floor(rand() * (stream.length - T - 1));
      ids.set(stream.subarray(at, at + T), b * T);
      tg.set(stream.subarray(at + 1, at + T + 1), b * T);
    }
    const f = forward(C, P, ids, tg, B, T, tab, true);
    const G = backward(C, P, ids, B, T, tab, f.cache);
    let norm = 0;
    for (const k of names) for (const g of G[k]) norm += g * g;
    norm = Math.sqrt(norm);
    const clip = norm > 1 ? 1 / norm : 1;
    const lr = step <= WARMUP ? (LR * step) / WARMUP : LR * (0.1 + 0.45 * (1 + Math.cos((Math.PI * (step - WARMUP)) / (STEPS - WARMUP))));
    const c1 = 1 - b1 ** step;
    const c2 = 1 - b2 ** step;
    for (const k of names) {
      const p = P[k];
      const g = G[k];
      const m = mAdam[k];
      const v = vAdam[k];
      const decay = p.length > C.H ? wd : 0; // no decay on norm weights
      for (let i = 0; i < p.length; i++) {
        const gi = g[i] * clip;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p[i] -= lr * ((m[i] / c1) / (Math.sqrt(v[i] / c2) + epsA) + decay * p[i]);
      }
    }
    if (step % 50 === 0 || step === 1) {
      const entry = { step, train: Number(f.loss.toFixed(4)), seconds: Math.round((Date.now() - t0) / 1000) };
      if (step % 200 === 0 || step === STEPS) entry.heldout = Number(evalLoss(P, held, tab).toFixed(4));
      log.push(entry);
      console.log(JSON.stringify(entry));
    }
  }
  const heldLoss = evalLoss(P, held, tab, 1000);
  const stats = activationStats(P, held, tab);
  console.log(`held-out loss ${heldLoss.toFixed(4)} (perplexity ${Math.exp(heldLoss).toFixed(2)}; uniform ${C.V})`);
  console.log(JSON.stringify(stats));

  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: C.H, intermediate_size: C.I, num_hidden_layers: C.L,
    num_attention_heads: C.nh, num_key_value_heads: C.nkv, hidden_act: 'silu', max_position_embeddings: C.ctx, rms_norm_eps: C.eps,
    rope_theta: C.theta, vocab_size: C.V, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2, torch_dtype: 'float32',
  };
  const tmp = `${OUT}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  await writeFile(join(tmp, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  await writeFile(join(tmp, 'tokenizer.json'), JSON.stringify(tf.json) + '\n');
  await writeFile(join(tmp, 'tokenizer_config.json'), JSON.stringify(tf.config, null, 2) + '\n');
  await writeFile(join(tmp, 'model.safetensors'), safetensors(P, paramShapes(C)));
  await writeFile(join(tmp, 'heldout.txt'), heldout.slice(0, 120).join('\n') + '\n');
  const summary = { params: nParams, steps: STEPS, batch: B, seqLen: T, tokensSeen: STEPS * B * T, heldoutLoss: heldLoss, heldoutPerplexity: Math.exp(heldLoss), uniformPerplexity: C.V, activations: stats, log };
  await writeFile(join(tmp, 'train-log.json'), JSON.stringify(summary, null, 1) + '\n');
  await rm(OUT, { recursive: true, force: true });
  await rename(tmp, OUT);
  console.log(`wrote ${OUT}`);
}

await main();
