// Packs webq as a fresh clone would: copies what the build reads (package.json, sources, shaders,
// scripts, tsconfigs; no dist/, no generated file) into a temporary folder beside a link to this
// node_modules, and runs `npm pack` there, whose "prepare" script builds dist/ exactly as `npm ci`
// and a git-URL install do. The repository's own dist/ is neither read nor written, so stale
// outputs in it cannot slip into the tarball.
//
//   node scripts/pack.mjs <destination folder> [--json]
//
// Prints the tarball's path, or with --json npm's pack report ({ filename, files, size, ... }) with
// `tarball` (its absolute path) added.
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCES = ['package.json', 'README.md', 'LICENSE', 'bin', 'shaders', 'src', 'scripts', 'tsconfig.json', 'tsconfig.build.json'];
// Build outputs that live in src/ (see .gitignore): a fresh clone has none.
const GENERATED = [join(root, 'src', 'gpu', 'shaders.generated.ts')];

const args = process.argv.slice(2);
const json = args.includes('--json');
const dest = args.find((a) => !a.startsWith('--'));
if (!dest) {
  process.stderr.write('usage: node scripts/pack.mjs <destination folder> [--json]\n');
  process.exit(2);
}
mkdirSync(dest, { recursive: true });

const work = mkdtempSync(join(tmpdir(), 'webq-pack-'));
try {
  for (const name of SOURCES) {
    const from = join(root, name);
    if (!existsSync(from)) continue;
    // Leaves out generated files, logs and dot-files (editor and tool state).
    const keep = (f) => !GENERATED.includes(f) && !f.endsWith('.log') && !`${sep}${relative(root, f)}`.includes(`${sep}.`);
    cpSync(from, join(work, name), { recursive: true, filter: keep });
  }
  symlinkSync(join(root, 'node_modules'), join(work, 'node_modules'), 'dir');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const { stdout } = await promisify(execFile)(npm, ['pack', '--json', '--pack-destination', resolve(dest)], {
    cwd: work,
    maxBuffer: 64 << 20,
    env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' },
  }).catch((e) => {
    // The build's complaints (tsc's errors come on stdout), without npm's JSON and stack.
    const said = `${e.stdout ?? ''}${e.stderr ?? ''}`.split('\n').filter((l) => l.trim() && !/^\s*[{}\]]|^\s+"|complete log/.test(l));
    throw new Error(`npm pack failed in a clean copy of the sources:\n${said.join('\n')}`);
  });
  // npm prints the report last; the build's own output (prepare) may come before it.
  const report = JSON.parse(stdout.slice(stdout.lastIndexOf('\n[') + 1))[0];
  report.tarball = resolve(dest, report.filename);
  process.stdout.write(json ? `${JSON.stringify(report)}\n` : `${report.tarball}\n`);
} catch (e) {
  process.stderr.write(`webq pack: ${e instanceof Error ? e.message : e}\n`);
  process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
