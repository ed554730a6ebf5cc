/** Shared shapes for CLI subcommands (kept apart from main.ts so commands don't import the entry). */

/** Where a command writes; tests pass their own to capture output. */
export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  /** All of standard input as text (for texts given as "-"); absent where there is none. */
  readStdin?(): Promise<string>;
  /** stderr is a terminal, so progress may redraw a line in place; otherwise it prints plain lines. */
  stderrIsTTY?: boolean;
}

export interface Command {
  /** One line for the command list in `webq --help`. */
  summary: string;
  /** Full help text for `webq <command> --help`. */
  usage: string;
  /** Runs with the arguments after the command name; resolves to the exit code. */
  run(args: string[], io: CliIO): Promise<number>;
}

/** A bad command line; reported like any other error. */
export class UsageError extends Error {}
