/**
 * `webq classify <model> TEXT...`: the label and score a *ForSequenceClassification checkpoint
 * (BERT, RoBERTa, XLM-RoBERTa, DistilBERT, MPNet, ModernBERT) gives each text; with --tokens, the labels a
 * *ForTokenClassification checkpoint gives each token, or the entity spans they make (NER).
 */
import type { EntityGroup, TokenEntity } from '../api/token-classification.ts';
import { AGGREGATIONS, type Aggregation } from '../api/token-groups.ts';
import type { Command } from './command.ts';
import { UsageError } from './command.ts';
import { expandStdin, loadModel, loadOptions, parseArgs, shortText, warnTruncated, CACHE_FLAGS } from './model-args.ts';

const USAGE = `usage: webq classify <model> [options] TEXT...

Classifies each TEXT with a *ForSequenceClassification checkpoint (config.json
id2label names the labels) and prints the top label and its probability.
With --tokens, labels each token with a *ForTokenClassification checkpoint (NER)
and prints the entities found, with their character offsets in the text.

<model> is a local folder, a folder URL (https://host/path/) or a Hugging Face
hub id (org/name or org/name@revision); it is always the first argument unless
--model gives it. A "-" reads more texts from stdin, one per line.

options:
  -m, --model M       the model (instead of the first argument)
  --dtype D           linear-layer weights: f32, f16, q8 (default), q4, w8a8, w4a8
  --activations A     q8/q4 Linears: int8 (activations quantized per block of 32,
                      the default) or float (weight-only; the default for GPTQ,
                      AWQ, compressed-tensors, bitsandbytes); w8a8/w4a8 are int8
  --tokens            token classification: every token's label ("O" left out), or
                      with --aggregation the entity spans
  --aggregation A     with --tokens: none (default: per token), simple (adjacent tokens
                      of one entity merged), first, max or average (words keep one label:
                      their first token's, their most confident token's, their mean)
  --json              print [{"text", "label", "score", "scores": [{"label", "score"}, ...]}, ...];
                      with --tokens [{"text", "entities": [{"entity", "score", "index", "word",
                      "start", "end"}, ...]}, ...] (grouped: "entity_group" instead of
                      "entity", no "index")
  --revision R        hub branch, tag or commit (default main)
  --no-cache          read remote files without the download cache
  --offline           never touch the network (also WEBQ_OFFLINE=1): cached files only
  --refresh           re-check a branch's files on the hub now (default: every 10 minutes)
  --no-truncate       a text longer than the model's limit is an error (default: cut it,
                      with a warning on stderr)
  --                  end of options: the rest are texts, even if they start with "-"
  -h, --help`;

export const classifyCommand: Command = {
  summary: 'classify texts with a sequence-classification encoder',
  usage: USAGE,
  async run(args, io) {
    const parsed = parseArgs('classify', args, {
      flags: ['--json', '--tokens', ...CACHE_FLAGS, '--no-truncate'],
      values: ['--model', '--dtype', '--activations', '--revision', '--aggregation'],
      aliases: { '-m': '--model' },
    });
    const load = loadOptions('classify', parsed);
    let model = parsed.values.get('--model');
    let texts = parsed.positional;
    if (model === undefined) {
      if (texts.length === 0) throw new UsageError('classify: expected a model and texts (run "webq classify --help")');
      [model, ...texts] = texts;
    }
    texts = await expandStdin('classify', texts, io);
    if (texts.length === 0) throw new UsageError(`classify: no texts to classify after the model ${JSON.stringify(model)}; pass them as arguments, or "-" to read lines from stdin`);

    const aggregation = parsed.values.get('--aggregation');
    if (aggregation !== undefined && !parsed.flags.has('--tokens')) throw new UsageError('classify: --aggregation groups token labels: add --tokens');
    if (aggregation !== undefined && !(AGGREGATIONS as readonly string[]).includes(aggregation)) {
      throw new UsageError(`classify: --aggregation ${JSON.stringify(aggregation)}: expected one of ${AGGREGATIONS.join(', ')}`);
    }
    const bert = await loadModel(model, io, load);
    try {
      if (parsed.flags.has('--tokens')) {
        const rows = await bert.tokenClassify(texts, { aggregation: aggregation as Aggregation | undefined, truncate: !parsed.flags.has('--no-truncate') });
        if (parsed.flags.has('--json')) io.stdout(`${JSON.stringify(rows.map((entities, i) => ({ text: texts[i], entities })), null, 2)}\n`);
        else io.stdout(rows.map((entities, i) => `${shortText(texts[i])}\n${entities.map(entityLine).join('')}`).join(''));
        return 0;
      }
      const results = await bert.classify(texts, { truncate: !parsed.flags.has('--no-truncate') });
      warnTruncated(io, results.map((r) => r.truncated), bert.maxLength);
      if (parsed.flags.has('--json')) {
        const rows = results.map((r, i) => ({ text: texts[i], label: r.label, score: r.score, scores: r.scores }));
        io.stdout(`${JSON.stringify(rows, null, 2)}\n`);
      } else {
        const width = Math.max(...results.map((r) => r.label.length));
        io.stdout(results.map((r, i) => `${r.label.padEnd(width)}  ${r.score.toFixed(4)}  ${shortText(texts[i])}\n`).join(''));
      }
      return 0;
    } finally {
      bert.dispose();
    }
  },
};

/** "  PER     0.9876  [0, 6)  Jeanne" */
function entityLine(e: TokenEntity | EntityGroup): string {
  const label = 'entity_group' in e ? e.entity_group : e.entity;
  return `  ${label.padEnd(8)}  ${e.score.toFixed(4)}  [${e.start}, ${e.end})  ${e.word}\n`;
}
