/**
 * `webq/worker`: webq's models in a dedicated Worker, so a page stays responsive while a model
 * downloads, compiles its shaders and runs. WorkerBertModel and WorkerLlmModel mirror BertModel and
 * LlmModel (their methods return the same values, asynchronously); WebqWorker is one worker with
 * its device, to share between models. The worker script is src/worker/worker.ts
 * (dist/webq.worker.js in the browser build).
 */
export { WebqWorker, type WorkerStartOptions, type WorkerModelOptions } from './connection.ts';
export { WorkerBertModel, type WorkerBertLoadOptions } from './bert.ts';
export { WorkerLlmModel, WorkerChatCompletions, type WorkerLlmLoadOptions } from './llm.ts';
export { WebqError } from '../errors.ts';
export type { Capabilities } from '../gpu/device.ts';
