/**
 * Keeps Dawn's adapter notices off a normal CLI run's stderr.
 *
 * On Vulkan drivers that offer more dynamic buffers per pipeline layout than Dawn supports
 * (lavapipe: 1000000, RADV: 500000), Dawn prints two lines when it enumerates adapters:
 *
 *   Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.
 *   Warning: maxDynamicStorageBuffersPerPipelineLayout artificially reduced from 1000000 to 16 to fit dynamic offset allocation limit.
 *
 * They come from requestAdapter() itself (Dawn's NormalizeLimits, unconditionally), not from the
 * limits a device asks for, no Dawn toggle turns them off, and native code writes them straight to
 * file descriptor 2, which JavaScript cannot redirect within its own process. So on Linux, where
 * Dawn uses Vulkan, the CLI runs a command that opens a GPU in a child process and reads the
 * child's stderr: those two lines are dropped, everything else passes through as it comes (a
 * progress bar redrawn in place included). With WEBQ_DEBUG set the command runs in-process and
 * Dawn's lines show. A library user's script gets the same with `node --import webq/quiet-dawn`
 * (src/quiet-dawn.ts).
 */
import { spawn } from 'node:child_process';
import { realpathSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { CliIO } from './command.ts';

/** Set in the child's environment: "tty" when the parent's stderr is a terminal, else "1". */
export const CHILD_ENV = 'WEBQ_CLI_CHILD';

const NOTICE = /^Warning: maxDynamic(Uniform|Storage)BuffersPerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.\r?$/;
const START = 'Warning: maxDynamic';

/** Removes Dawn's notices from a stream of text given in arbitrary pieces; push() returns what may be shown now. */
export class DawnNoticeFilter {
  /** The start of a line that may turn out to be a notice, held until its end is seen. */
  private held = '';

  push(text: string): string {
    let rest = this.held + text;
    this.held = '';
    let out = '';
    for (let nl = rest.indexOf('\n'); nl >= 0; nl = rest.indexOf('\n')) {
      const line = rest.slice(0, nl);
      if (!NOTICE.test(line)) out += `${line}\n`;
      rest = rest.slice(nl + 1);
    }
    // A partial line (a progress bar drawn in place) goes out at once, unless it may become a notice.
    if (START.startsWith(rest) || rest.startsWith(START)) this.held = rest;
    else out += rest;
    return out;
  }

  /** What is still held once the stream has ended. */
  end(): string {
    const rest = this.held;
    this.held = '';
    return rest;
  }
}

/** True when this process is the `webq` bin of this package (not a script that imported main()). */
function isOwnBin(): boolean {
  try {
    const bin = fileURLToPath(new URL('../../bin/webq.js', import.meta.url));
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(bin);
  } catch {
    return false;
  }
}

/** Whether `webq <argv>` should run in a filtered child (see the module comment). */
export function wantsFilter(): boolean {
  const env = process.env;
  return process.platform === 'linux' && !env.WEBQ_DEBUG && !env[CHILD_ENV] && isOwnBin();
}

/**
 * Runs the bin again with `argv`, stdin and stdout shared, stderr read through DawnNoticeFilter;
 * resolves to its exit code (128 + the signal's number when a signal ended it), or undefined when
 * no child could be started, so the caller runs the command itself.
 */
export function runFiltered(argv: string[], io: CliIO): Promise<number | undefined> {
  return runNodeFiltered([...nodeOptions(), process.argv[1], ...argv], { ...process.env, [CHILD_ENV]: io.stderrIsTTY ? 'tty' : '1' }, io.stderr);
}

/** This process's Node options, for a child; --inspect would make it compete for the debugger port. */
export function nodeOptions(): string[] {
  return process.execArgv.filter((a) => !a.startsWith('--inspect'));
}

/**
 * Runs `node <args>` with `env`, stdin and stdout shared and stderr read through DawnNoticeFilter
 * into `write`; resolves as runFiltered does. Signals: see below.
 */
export async function runNodeFiltered(args: string[], env: NodeJS.ProcessEnv, write: (text: string) => void): Promise<number | undefined> {
  const child = spawn(process.execPath, args, { stdio: ['inherit', 'inherit', 'pipe'], env });
  const filter = new DawnNoticeFilter();
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (text: string) => {
    const out = filter.push(text);
    if (out) write(out);
  });
  // Ctrl-C reaches the child from the terminal as well: it decides (chat stops a reply, the rest exit).
  const ignore = () => {};
  const forward = (signal: NodeJS.Signals) => void child.kill(signal);
  process.on('SIGINT', ignore);
  process.on('SIGTERM', forward);
  process.on('SIGHUP', forward);
  try {
    let started = false;
    const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined>((resolve) => {
      child.once('spawn', () => (started = true));
      child.on('error', () => (started ? undefined : resolve(undefined)));
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    const rest = filter.end();
    if (rest) write(rest);
    if (!ended) return undefined;
    return ended.code ?? 128 + (ended.signal ? constants.signals[ended.signal] : 0);
  } finally {
    process.off('SIGINT', ignore);
    process.off('SIGTERM', forward);
    process.off('SIGHUP', forward);
  }
}
