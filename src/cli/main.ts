/**
 * `webq` command-line entry. Subcommands live in a table so new ones are one entry each. Errors
 * become one `webq: <message>` line and exit code 1: users get the message, not a stack trace
 * (set WEBQ_DEBUG=1 to see the stack, and Dawn's own notices: see dawn-notices.ts). `webq` with
 * no command prints the usage on stderr and exits 2.
 */
import { UsageError, type CliIO, type Command } from './command.ts';
import { chatCommand } from './chat.ts';
import { cacheCommand } from './cache.ts';
import { classifyCommand } from './classify.ts';
import { CHILD_ENV, runFiltered, wantsFilter } from './dawn-notices.ts';
import { diffCommand } from './diff.ts';
import { doctorCommand } from './doctor.ts';
import { embedCommand } from './embed.ts';
import { evalCommand } from './eval.ts';
import { generateCommand } from './generate.ts';
import { infoCommand } from './info.ts';
import { keygenCommand } from './keygen.ts';
import { logitsCommand } from './logits.ts';
import { modelsCommand } from './models.ts';
import { patchCommand } from './patch.ts';
import { quantizeCommand } from './quantize.ts';
import { rerankCommand } from './rerank.ts';
import { serveCommand } from './serve.ts';

export { UsageError, type CliIO, type Command } from './command.ts';

const commands: Record<string, Command> = {
  info: infoCommand,
  models: modelsCommand,
  embed: embedCommand,
  classify: classifyCommand,
  rerank: rerankCommand,
  generate: generateCommand,
  chat: chatCommand,
  logits: logitsCommand,
  doctor: doctorCommand,
  quantize: quantizeCommand,
  eval: evalCommand,
  diff: diffCommand,
  patch: patchCommand,
  keygen: keygenCommand,
  cache: cacheCommand,
  serve: serveCommand,
};

/** The commands that open a WebGPU device, so Dawn may print its adapter notices. */
const GPU_COMMANDS = new Set(['embed', 'classify', 'rerank', 'generate', 'chat', 'logits', 'doctor', 'quantize', 'eval', 'serve']);

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((n) => n.length));
  const list = Object.entries(commands)
    .map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
    .join('\n');
  return `usage: webq <command> [options]\n\ncommands:\n${list}\n\nRun "webq <command> --help" for a command's options. --robustness (any command) turns Dawn's bounds clamping back on in Node (WEBQ_ROBUSTNESS=1; see \`webq doctor\`).\n`;
}

async function readProcessStdin(): Promise<string> {
  // TextDecoder in stream mode rather than Buffer: a character split across chunks stays whole.
  const decoder = new TextDecoder();
  let text = '';
  for await (const chunk of process.stdin as AsyncIterable<Uint8Array | string>) {
    text += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}

const processIO: CliIO = {
  stdout: (text) => void process.stdout.write(text),
  stderr: (text) => void process.stderr.write(text),
  readStdin: readProcessStdin,
  get stderrIsTTY() {
    // In the child that dawn-notices.ts runs, stderr is a pipe to the parent, which says what it has.
    return process.stderr.isTTY === true || process.env[CHILD_ENV] === 'tty';
  },
};

function debugEnabled(): boolean {
  const g = globalThis as { process?: { env?: Record<string, string | undefined> } };
  return Boolean(g.process?.env?.WEBQ_DEBUG);
}

/** Runs the CLI with `argv` (without the node and script paths) and resolves to the exit code. */
/**
 * `--robustness` (before or after the command name, not after `--`): Dawn's bounds clamping back on
 * for this run (DeviceOptions.robustness), as WEBQ_ROBUSTNESS=1 for the command and its child.
 */
function takeRobustness(argv: string[]): { argv: string[]; robustness: boolean } {
  const end = argv.indexOf('--');
  const head = end < 0 ? argv : argv.slice(0, end);
  if (!head.includes('--robustness')) return { argv, robustness: false };
  return { argv: [...head.filter((a) => a !== '--robustness'), ...(end < 0 ? [] : argv.slice(end))], robustness: true };
}

/** Runs `fn` with WEBQ_ROBUSTNESS=1 in the environment, as it was before afterwards. */
async function withRobustness<T>(on: boolean, fn: () => Promise<T>): Promise<T> {
  const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env;
  if (!on || !env) return fn();
  const before = env.WEBQ_ROBUSTNESS;
  env.WEBQ_ROBUSTNESS = '1';
  try {
    return await fn();
  } finally {
    if (before === undefined) delete env.WEBQ_ROBUSTNESS;
    else env.WEBQ_ROBUSTNESS = before;
  }
}

export async function main(argv0: string[], io: CliIO = processIO): Promise<number> {
  const { argv, robustness } = takeRobustness(argv0);
  return withRobustness(robustness, () => run(argv, io));
}

async function run(argv: string[], io: CliIO): Promise<number> {
  const [name, ...rest] = argv;
  try {
    if (name === undefined) {
      io.stderr(usage());
      return 2;
    }
    if (name === '--help' || name === '-h' || name === 'help') {
      io.stdout(usage());
      return 0;
    }
    const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
    if (command === undefined) throw new UsageError(`unknown command ${JSON.stringify(name)} (run "webq --help" for the list)`);
    if (rest.includes('--help') || rest.includes('-h')) {
      io.stdout(`${command.usage}\n`);
      return 0;
    }
    if (io === processIO && GPU_COMMANDS.has(name) && wantsFilter()) {
      const code = await runFiltered(argv, io);
      if (code !== undefined) return code;
    }
    return await command.run(rest, io);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    // One line, whatever the message holds (file names and JSON snippets may contain newlines).
    io.stderr(`webq: ${message.replace(/\s*[\r\n]+\s*/g, ' ')}\n`);
    if (debugEnabled() && e instanceof Error && e.stack) io.stderr(`${e.stack}\n`);
    return 1;
  }
}
