// Loads the tiny chat Llama from ?model= (a folder URL) on the browser's adapter (SwiftShader in
// headless Chromium: no shader-f16, so f32 weights and an f32 KV cache) and publishes the greedy
// and seeded-sample ids for test/node/llm-runtimes.test.ts to compare with Node and Deno.
import { LlmModel } from '../../src/api/llm.ts';
import { GREEDY, RUNTIME_PROMPT, SEEDED, type RuntimeIds } from '../helpers/llm-fixture.ts';

declare global {
  interface Window {
    __webqLlm?: (RuntimeIds & { adapter: string; f16: boolean }) | { error: string };
  }
}

async function main(): Promise<void> {
  const location = new URLSearchParams(window.location.search).get('model');
  if (!location) throw new Error('give the model folder URL as ?model=');
  const model = await LlmModel.load(location, { dtype: 'f32', kv: 'f32', cache: false });
  try {
    const greedy = await model.generate(RUNTIME_PROMPT, GREEDY);
    const sample = await model.generate(RUNTIME_PROMPT, SEEDED);
    window.__webqLlm = { adapter: model.ctx.caps.adapter, f16: model.ctx.caps.f16, promptIds: greedy.promptIds, greedy: greedy.tokens, sample: sample.tokens };
  } finally {
    model.dispose();
  }
  document.getElementById('log')!.textContent = JSON.stringify(window.__webqLlm, null, 1);
}

main().catch((e: Error) => {
  window.__webqLlm = { error: `${e.name}: ${e.message}` };
  document.getElementById('log')!.textContent = window.__webqLlm.error;
});
