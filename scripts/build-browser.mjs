// Writes dist/webq.browser.js: the whole public API (src/index.ts) as one self-contained ES module
// for browsers, for a page's <script type="module"> with no build step or import map, and for
// bundlers through the package's "browser" export condition. Beside it, dist/webq.worker.js: the
// worker script (src/worker/worker.ts) that WorkerBertModel / WorkerLlmModel start, as
// self-contained as the first; webq.browser.js finds it at new URL('./webq.worker.js', import.meta.url). Its dependencies are inside
// (@huggingface/tokenizers, @huggingface/jinja, wgsl_reflect), and so is the WGSL
// (src/gpu/shaders.generated.ts). Run after scripts/gen-shaders.mjs, as `npm run build` does.
//
// What only Node or Deno can do (local paths through node:fs, Dawn from the `webgpu` package) is
// reached in src/ through dynamic import() of a specifier held in a variable. A bundler leaves those
// alone, but a minifier folds the variable into the call, and `import("webgpu")` in a published
// file would make the next bundler pull Dawn into a web app. Here each such import becomes a
// rejection: a browser never takes those paths (src/io/node-fs.ts and src/gpu/device.ts check the
// runtime first), and the bundle names no Node module at all.
import { createRequire } from 'node:module';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// `--out FILE` writes elsewhere (tests build their own copy and leave dist/ alone).
const outAt = process.argv.indexOf('--out');
const out = outAt > 0 ? resolve(process.argv[outAt + 1]) : join(root, 'dist', 'webq.browser.js');
const WORKER_FILE = 'webq.worker.js';
const workerOut = join(dirname(out), WORKER_FILE);
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

/** Rolldown comes with Vite (a devDependency); npm hoists it, other layouts keep it under vite. */
async function loadRolldown(subpath = '') {
  try {
    return await import(`rolldown${subpath}`);
  } catch {
    const fromVite = createRequire(createRequire(join(root, 'package.json')).resolve('vite/package.json'));
    return import(pathToFileURL(fromVite.resolve(`rolldown${subpath}`)).href);
  }
}

const { build } = await loadRolldown();
const { parseAst } = await loadRolldown('/parseAst');

// The dependencies inside the bundle, named with their licenses in its first line.
const BUNDLED = ['@huggingface/tokenizers', '@huggingface/jinja', '@huggingface/gguf', 'wgsl_reflect'];
function about(name) {
  // Not every package exports its package.json: walk up from its entry point.
  for (let dir = dirname(createRequire(join(root, 'package.json')).resolve(name)); dir !== dirname(dir); dir = dirname(dir)) {
    const p = existsSync(join(dir, 'package.json')) && JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    if (p?.name === name) return `${name} ${p.version} (${p.license})`;
  }
  throw new Error(`cannot find ${name}'s package.json`);
}

/** Every AST node under `node`, depth first. */
function* nodes(node) {
  if (Array.isArray(node)) for (const n of node) yield* nodes(n);
  else if (node && typeof node === 'object') {
    if (typeof node.type === 'string') yield node;
    for (const [k, v] of Object.entries(node)) if (k !== 'parent' && v && typeof v === 'object') yield* nodes(v);
  }
}

const REJECTION =
  'Promise.reject(new Error("webq.browser.js cannot load Node modules (local file paths, Dawn): use webq\'s Node build in Node and Deno"))';

/** @type {import('rolldown').Plugin} */
const nodeOnlyImports = {
  name: 'webq:node-only-imports',
  transform: {
    filter: { id: /[\\/]src[\\/].*\.ts$/, code: 'import(' },
    handler(code, id) {
      // import(x) with a computed specifier: only Node-only code in src/ imports that way.
      const calls = [...nodes(parseAst(code, { lang: 'ts' }, id))].filter((n) => n.type === 'ImportExpression' && n.source.type !== 'Literal');
      if (calls.length === 0) return null;
      let next = code;
      for (const { start, end } of calls.sort((a, b) => b.start - a.start)) {
        const text = next.slice(start, end);
        if (!text.startsWith('import(')) throw new Error(`${id}: cannot place the import() at ${start}: ${JSON.stringify(text.slice(0, 40))}`);
        // Keep the line count, so that the source map still points at the right lines.
        next = next.slice(0, start) + REJECTION + '\n'.repeat(text.split('\n').length - 1) + next.slice(end);
      }
      return { code: next, map: null };
    },
  },
};

/**
 * src/worker/script-url.ts finds the worker script beside itself in the sources; in the bundle the
 * script is the worker bundle, written beside webq.browser.js.
 */
/** @type {import('rolldown').Plugin} */
const workerScriptUrl = {
  name: 'webq:worker-script-url',
  load: {
    filter: { id: /[\\/]src[\\/]worker[\\/]script-url\.ts$/ },
    handler() {
      return `export function defaultWorkerUrl() { return new URL(${JSON.stringify(`./${WORKER_FILE}`)}, import.meta.url); }\n`;
    },
  },
};

/**
 * The constraint engine (@mlc-ai/web-xgrammar: a UMD script with its WebAssembly inlined, about
 * 1.1 MB) is not bundled: src/structured/xgrammar.ts imports it on first use of a constraint, and
 * here that import becomes one of webq.xgrammar.js, written beside the bundle as an ES module that
 * runs the package's script unchanged. A page that never constrains a reply never downloads it.
 */
const XGRAMMAR_FILE = 'webq.xgrammar.js';
/** @type {import('rolldown').Plugin} */
const xgrammarBeside = {
  name: 'webq:xgrammar-beside',
  transform: {
    filter: { id: /[\\/]src[\\/]structured[\\/]xgrammar\.ts$/ },
    handler(code, id) {
      const from = "import('@mlc-ai/web-xgrammar')";
      if (!code.includes(from)) throw new Error(`${id}: expected ${from}`);
      return { code: code.replace(from, `import(new URL(${JSON.stringify(`./${XGRAMMAR_FILE}`)}, import.meta.url).href)`), map: null };
    },
  },
};

function writeXgrammar(dir) {
  const src = readFileSync(createRequire(join(root, 'package.json')).resolve('@mlc-ai/web-xgrammar/lib/index.js'), 'utf8');
  const version = JSON.parse(readFileSync(createRequire(join(root, 'package.json')).resolve('@mlc-ai/web-xgrammar/package.json'), 'utf8')).version;
  const body =
    `/*! @mlc-ai/web-xgrammar ${version} (Apache-2.0), its lib/index.js run as the CommonJS module it is, for webq's constraints */\n` +
    `const module = { exports: {} };\n(function (exports, module) {\n${src}\n}).call(undefined, module.exports, module);\nexport default module.exports;\n`;
  writeFileSync(join(dir, XGRAMMAR_FILE), body);
  return body;
}

/** The bundle must stand alone: no import or export from another module (but the engine beside it), no Node module named. */
function checkSelfContained(code, out) {
  const problems = [];
  for (const n of nodes(parseAst(code, { lang: 'js' }))) {
    if (n.type === 'ImportExpression' && code.slice(n.start, n.end).includes(XGRAMMAR_FILE)) continue;
    if (n.type === 'ImportExpression' || n.type === 'ImportDeclaration' || ((n.type === 'ExportNamedDeclaration' || n.type === 'ExportAllDeclaration') && n.source)) {
      problems.push(`${n.type} at ${n.start}`);
    } else if (n.type === 'CallExpression' && n.callee.type === 'Identifier' && n.callee.name === 'require') {
      problems.push(`require() at ${n.start}`);
    } else if (n.type === 'Literal' && typeof n.value === 'string' && /^node:/.test(n.value)) {
      problems.push(`the string '${n.value}'`);
    }
  }
  if (problems.length) throw new Error(`${relative(root, out)} is not self-contained: ${problems.join(', ')}`);
}

/** Bundles `input` into `file`, then checks that it stands alone (or removes it). */
async function bundle(input, file, plugins, what) {
  await build({
    input,
    platform: 'browser',
    tsconfig: join(root, 'tsconfig.build.json'),
    plugins,
    // @huggingface/gguf re-exports helpers of @huggingface/tasks (model snippets, ...) that webq never
    // calls; that package declares no sideEffects, so without this they stay: +220 KiB for a few enums.
    treeshake: { moduleSideEffects: (id) => !/@huggingface[\\/]tasks[\\/]/.test(id) },
    write: true,
    onLog(level, log, handler) {
      // Any warning (an unresolved import, a broken source map) fails the build rather than scroll by.
      if (level === 'warn') throw new Error(`rolldown: ${log.message}`);
      handler(level, log);
    },
    output: {
      file,
      format: 'esm',
      codeSplitting: false,
      // errors.ts names each error class after itself (new.target.name): keep class names.
      minify: { compress: { keepNames: { function: false, class: true } }, mangle: { keepNames: { function: false, class: true } } },
      sourcemap: true,
      // The sources are not copied into the maps: webq's own ship in src/ (the maps point there), and
      // embedding them and the bundled packages' doubled the package (4.5 MB of maps).
      sourcemapExcludeSources: true,
      banner: `/*! webq ${pkg.version} (${pkg.license}), ${what}; bundles ${BUNDLED.map(about).join(', ')} */`,
    },
  });
  const code = readFileSync(file, 'utf8');
  try {
    checkSelfContained(code, file);
  } catch (e) {
    rmSync(file, { force: true });
    rmSync(`${file}.map`, { force: true });
    throw e;
  }
  return code;
}

const outputs = [
  [out, await bundle(join(root, 'src', 'index.ts'), out, [nodeOnlyImports, workerScriptUrl, xgrammarBeside], 'browser build')],
  [workerOut, await bundle(join(root, 'src', 'worker', 'worker.ts'), workerOut, [nodeOnlyImports, xgrammarBeside], 'worker script (see webq.browser.js)')],
  [join(dirname(out), XGRAMMAR_FILE), writeXgrammar(dirname(out))],
];

const kb = (n) => `${(n / 1024).toFixed(0)} KiB`;
for (const [file, code] of outputs) {
  const gz = gzipSync(code, { level: 9 }).length;
  process.stdout.write(`${relative(root, file)}: ${kb(statSync(file).size)}, ${kb(gz)} gzipped\n`);
}
