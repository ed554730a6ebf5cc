/**
 * The constraint options of `webq generate` and `webq chat`: --json-schema FILE, --regex R,
 * --grammar FILE (one of them). Files are read and checked before the model loads, so a bad
 * schema costs no download.
 */
import { readFile } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { parseResponseFormat, type ResponseFormat } from '../structured/constraint.ts';
import { UsageError } from './command.ts';
import type { ParsedArgs } from './model-args.ts';

export const CONSTRAINT_VALUES = ['--json-schema', '--regex', '--grammar'] as const;
export const CONSTRAINT_HELP = `  --json-schema FILE      the reply is JSON valid for the JSON Schema in FILE
  --regex R               the whole reply matches the regular expression R
  --grammar FILE          the reply is derived from the root rule of the EBNF/GBNF grammar in FILE`;

async function readText(command: string, option: string, file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new UsageError(`${command}: ${option} ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** The response format the options ask for (checked), or undefined for none. */
export async function constraintOption(command: string, parsed: ParsedArgs): Promise<ResponseFormat | undefined> {
  const given = CONSTRAINT_VALUES.filter((o) => parsed.values.has(o));
  if (given.length > 1) throw new UsageError(`${command}: give one of ${CONSTRAINT_VALUES.join(', ')}, not ${given.join(' and ')}`);
  let format: unknown;
  if (parsed.values.has('--json-schema')) {
    const file = parsed.values.get('--json-schema')!;
    const text = await readText(command, '--json-schema', file);
    let schema: unknown;
    try {
      schema = JSON.parse(text);
    } catch (e) {
      throw new UsageError(`${command}: --json-schema ${file}: not JSON (${(e as Error).message})`);
    }
    const name = basename(file, extname(file)).replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64) || 'schema';
    format = { type: 'json_schema', json_schema: { name, schema, strict: true } };
  } else if (parsed.values.has('--regex')) {
    format = { type: 'regex', pattern: parsed.values.get('--regex') };
  } else if (parsed.values.has('--grammar')) {
    const file = parsed.values.get('--grammar')!;
    format = { type: 'grammar', grammar: await readText(command, '--grammar', file) };
  } else return undefined;
  return (parseResponseFormat(format, given[0]) as ResponseFormat | null) ?? undefined;
}
