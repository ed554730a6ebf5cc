// The page side of `npm run bench -- ort-web` (bench/ort-web.ts serves it and drives Chromium).
// Plain JavaScript, no build step: it imports webq's browser bundle (dist/webq.browser.js) and
// onnxruntime-web as a page would, reads what to run from /config.json, times webq's BertModel and
// onnxruntime-web's InferenceSession on the same weights in alternation, and publishes the times and
// output comparisons in window.__ortWeb ({ error } when something fails outside a single case).
// Progress lines go to the console, prefixed "[ort-web]", which the suite copies to its stderr.

const el = document.getElementById('log');
const log = (s) => {
  console.log(`[ort-web] ${s}`);
  if (el) el.textContent += `${s}\n`;
};
const message = (e) => (e instanceof Error ? `${e.name}: ${e.message}` : typeof e === 'number' ? `onnxruntime wasm exception (pointer ${e})` : String(e));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function compare(webq, a, b) {
  if (a.length !== b.length) throw new Error(`outputs differ in length: ${a.length} vs ${b.length}`);
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) maxAbs = Math.max(maxAbs, Math.abs(a[i] - b[i]));
  return { cosine: webq.cosineSimilarity(a, b), maxAbs };
}

async function main() {
  const cfg = await (await fetch('./config.json', { cache: 'no-store' })).json();
  const { B, T, reps, warmup } = cfg;
  const webq = await import(cfg.webqUrl);
  const ort = await import(cfg.ortUrl);
  ort.env.wasm.wasmPaths = new URL(cfg.ortDir, location.href).href;
  if (cfg.numThreads) ort.env.wasm.numThreads = cfg.numThreads;
  ort.env.logLevel = cfg.ortLogLevel;
  const modelUrl = new URL(cfg.modelPath, location.href).href;

  // Token ids in: onnxruntime gets them as int64 tensors; webq's public API takes text, so each row
  // is its ids in decimal, which the bench's tokenizer.json (a WordPiece vocabulary "0".."V-1",
  // whitespace split, no special tokens) maps back to the same ids.
  const ids = cfg.ids;
  const texts = Array.from({ length: B }, (_, b) => ids.slice(b * T, (b + 1) * T).join(' '));
  const i64 = (f) => BigInt64Array.from({ length: B * T }, (_, i) => BigInt(f(i)));
  const feeds = {
    input_ids: new ort.Tensor('int64', i64((i) => ids[i]), [B, T]),
    attention_mask: new ort.Tensor('int64', i64(() => 1), [B, T]),
    token_type_ids: new ort.Tensor('int64', i64(() => 0), [B, T]),
  };
  const tokenizer = webq.TextTokenizer.fromJson(await (await fetch(`${modelUrl}tokenizer.json`)).text());
  let t0 = performance.now();
  const enc = tokenizer.encodeBatch(texts, { maxLength: T });
  const tokenizeMs = performance.now() - t0;
  if (enc.batch !== B || enc.seqLen !== T || enc.ids.some((x, i) => x !== ids[i])) throw new Error('the identity tokenizer did not reproduce the token ids');

  const ctx = await webq.GpuContext.create(cfg.kernels ? { kernels: cfg.kernels } : {});
  const info = {
    adapter: ctx.caps.adapter,
    kernels: ctx.caps.kernels,
    f16: ctx.caps.f16,
    dot4i8: ctx.caps.dot4I8,
    ort_version: ort.env.versions?.web ?? ort.env.versions?.common ?? null,
    ort_threads: ort.env.wasm.numThreads ?? null,
    cross_origin_isolated: self.crossOriginIsolated,
    user_agent: navigator.userAgent,
    tokenize_ms: tokenizeMs,
  };
  log(`webq: ${info.adapter}, ${info.kernels} kernels, shader-f16 ${info.f16}, dot4I8Packed ${info.dot4i8}; onnxruntime-web ${info.ort_version} (${cfg.ortEntry}), ${info.ort_threads ?? 'default'} wasm thread(s), crossOriginIsolated ${info.cross_origin_isolated}`);

  const sessions = new Map(); // ort dtype -> { session } | { error }
  const pairs = [];
  try {
    for (const { dtype, ort: od } of cfg.pairs) {
      if (!sessions.has(od)) {
        t0 = performance.now();
        try {
          const bytes = new Uint8Array(await (await fetch(`./onnx/${od}.onnx`)).arrayBuffer());
          const session = await ort.InferenceSession.create(bytes, { executionProviders: [cfg.ep], logSeverityLevel: cfg.ortLogSeverity });
          sessions.set(od, { session });
          log(`onnxruntime ${od} session (${cfg.ep}): ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        } catch (e) {
          sessions.set(od, { error: `InferenceSession.create: ${message(e)}` });
          log(`onnxruntime ${od} session failed: ${message(e)}`);
        }
      }
      t0 = performance.now();
      const model = await webq.BertModel.load(modelUrl, { dtype, context: ctx, cache: false });
      log(`webq ${dtype} loaded: ${((performance.now() - t0) / 1000).toFixed(1)} s, ${(model.weightBytes / 2 ** 20).toFixed(1)} MiB on the GPU`);
      pairs.push({ dtype, od, model, s: sessions.get(od), webq: [], ort: [], out: { webq: null, ort: null }, ortError: sessions.get(od).error ?? null });
    }

    info.ort_threads = ort.env.wasm.numThreads ?? null; // filled in by onnxruntime once it has started
    log(`onnxruntime-web wasm threads: ${info.ort_threads ?? 'unknown'}`);
    for (let round = 0; round < warmup + reps; round++) {
      for (const p of pairs) {
        let tOrt = null;
        if (!p.ortError) {
          try {
            t0 = performance.now();
            const o = await p.s.session.run(feeds);
            const data = o.last_hidden_state.data;
            tOrt = performance.now() - t0;
            if (round === 0) p.out.ort = data;
          } catch (e) {
            p.ortError = `InferenceSession.run: ${message(e)}`;
            log(`onnxruntime ${p.od} run failed: ${p.ortError}`);
          }
        }
        t0 = performance.now();
        const h = await p.model.hidden(texts, { truncate: false });
        const tWebq = performance.now() - t0;
        if (round === 0) p.out.webq = h.data;
        else {
          p.webq.push(tWebq);
          if (tOrt !== null) p.ort.push(tOrt);
        }
        const what = round < warmup ? 'warm-up' : `round ${round - warmup + 1}/${reps}`;
        log(`${what} ${p.dtype}: webq ${tWebq.toFixed(0)} ms, onnxruntime ${p.od} ${tOrt === null ? 'failed' : `${tOrt.toFixed(0)} ms`}`);
      }
    }

    const fp32 = pairs.find((p) => p.od === 'fp32' && p.out.ort)?.out.ort ?? null;
    const rows = pairs.map((p) => {
      const ortOk = !p.ortError && p.out.ort;
      const c = ortOk ? compare(webq, p.out.webq, p.out.ort) : null;
      return {
        dtype: p.dtype,
        ort_dtype: p.od,
        webq_ms: median(p.webq),
        ort_ms: ortOk ? median(p.ort) : null,
        webq_runs_ms: p.webq,
        ort_runs_ms: p.ort,
        cosine: c?.cosine ?? null,
        max_abs_diff: c?.maxAbs ?? null,
        webq_cosine_vs_fp32: fp32 ? compare(webq, p.out.webq, fp32).cosine : null,
        ort_cosine_vs_fp32: fp32 && ortOk ? compare(webq, p.out.ort, fp32).cosine : null,
        weight_bytes: p.model.weightBytes,
        ort_error: p.ortError,
      };
    });
    return { info, rows };
  } finally {
    for (const p of pairs) p.model.dispose();
    for (const s of sessions.values()) await s.session?.release();
    ctx.dispose();
  }
}

main().then(
  (r) => {
    window.__ortWeb = r;
    log('done');
  },
  (e) => {
    window.__ortWeb = { error: message(e), code: typeof e?.code === 'string' ? e.code : null, stack: e instanceof Error ? e.stack : undefined };
    log(`failed: ${message(e)}`);
  },
);
