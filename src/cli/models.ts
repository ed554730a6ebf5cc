/**
 * `webq models`: the model_type values webq runs, read from src/models/registry.ts (the list the
 * config parsers dispatch on), so what it prints is what loads.
 */
import { MODEL_TYPES, tasksOf, type ModelTypeEntry } from '../models/registry.ts';
import type { Command } from './command.ts';
import { UsageError } from './command.ts';

const USAGE = `usage: webq models [--json]

Lists the model types webq runs (config.json "model_type"): which forward runs
each, the config.json "architectures" it takes and what each is used for (embed,
classify, rerank, token-classify, generate), and what differs from the rest of
its family. An encoder whose architectures name another class (BertForMaskedLM,
...) loads as a bare encoder for embed; a decoder must name its own class.

options:
  --json   print [{"model_type", "forward", "architectures": {name: [tasks]}, "tasks", "differs"}, ...]
  -h, --help`;

function row(e: ModelTypeEntry): { model_type: string; forward: string; architectures: Record<string, string[]>; tasks: string[]; differs: string } {
  return { model_type: e.modelType, forward: e.forward, architectures: Object.fromEntries(Object.entries(e.architectures).map(([a, t]) => [a, [...t]])), tasks: tasksOf(e), differs: e.differs };
}

export const modelsCommand: Command = {
  summary: 'list the model types (architectures) webq runs and their tasks',
  usage: USAGE,
  async run(args, io) {
    const unknown = args.filter((a) => a !== '--json');
    if (unknown.length) throw new UsageError(`models: unknown argument ${JSON.stringify(unknown[0])} (run "webq models --help")`);
    const rows = (MODEL_TYPES as readonly ModelTypeEntry[]).map(row);
    if (args.includes('--json')) {
      io.stdout(`${JSON.stringify(rows, null, 2)}\n`);
      return 0;
    }
    const width = Math.max(...rows.map((r) => r.model_type.length));
    const lines: string[] = [];
    for (const forward of ['encoder', 'decoder']) {
      lines.push(`${forward}s:`);
      for (const r of rows.filter((x) => x.forward === forward)) {
        lines.push(`  ${r.model_type.padEnd(width)}  ${r.tasks.join(', ')}`);
        lines.push(`  ${' '.repeat(width)}  architectures: ${Object.keys(r.architectures).join(', ')}`);
        lines.push(`  ${' '.repeat(width)}  ${r.differs}`);
      }
    }
    io.stdout(`${lines.join('\n')}\n`);
    return 0;
  },
};
