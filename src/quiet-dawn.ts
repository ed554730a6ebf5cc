/**
 * `node --import webq/quiet-dawn app.js`: app.js with Dawn's two adapter notices
 * ("Warning: maxDynamic...BuffersPerPipelineLayout artificially reduced ...", printed on Linux the
 * first time a process asks for a WebGPU adapter) kept off its stderr, as the `webq` CLI keeps them
 * off its own.
 *
 * Dawn writes them from native code straight to file descriptor 2. Node has no dup2, and closing
 * fd 2 to reopen it elsewhere would race every other thread's open() (the next file opened
 * anywhere in the process would become stderr), so no library can hide them inside the process.
 * This preload does what the CLI does instead (src/cli/dawn-notices.ts): it runs the same command
 * again as a child whose stderr it reads through the notice filter, then exits with the child's
 * code; the app itself runs only in the child. stdin and stdout are the child's own; its stderr
 * is a pipe (stderr.isTTY is false there). With WEBQ_DEBUG set, off Linux (Dawn uses no Vulkan
 * there), or when no child can be started, it does nothing and the app runs here.
 */
import { nodeOptions, runNodeFiltered } from './cli/dawn-notices.ts';

/** Set in the child's environment, so the preload does not start another one there. */
export const QUIET_CHILD_ENV = 'WEBQ_QUIET_DAWN_CHILD';

if (process.platform === 'linux' && !process.env.WEBQ_DEBUG && !process.env[QUIET_CHILD_ENV] && process.argv[1] !== undefined) {
  const code = await runNodeFiltered([...nodeOptions(), ...process.argv.slice(1)], { ...process.env, [QUIET_CHILD_ENV]: '1' }, (text) => void process.stderr.write(text));
  if (code !== undefined) process.exit(code);
}
