/**
 * Just enough of the ONNX model format to hand onnxruntime a graph built in memory: a protobuf
 * encoder for the few messages a model needs (ModelProto, GraphProto, NodeProto, AttributeProto,
 * TensorProto, ValueInfoProto) and a small builder. Field numbers are those of onnx.proto. Used by
 * `npm run bench -- ort` only; webq itself reads safetensors, not ONNX.
 */

/** ONNX TensorProto.DataType values used here. */
export const OnnxType = { FLOAT: 1, UINT8: 2, INT8: 3, INT64: 7 } as const;

type Bytes = Uint8Array;

class Writer {
  private parts: Bytes[] = [];
  private size = 0;

  private push(b: Bytes): void {
    this.parts.push(b);
    this.size += b.length;
  }

  private varint(v: bigint): void {
    // Negative int64s are written as their 64-bit two's complement (10 bytes), as protobuf does.
    let x = BigInt.asUintN(64, v);
    const out: number[] = [];
    do {
      let byte = Number(x & 0x7fn);
      x >>= 7n;
      if (x) byte |= 0x80;
      out.push(byte);
    } while (x);
    this.push(Uint8Array.from(out));
  }

  private tag(field: number, wire: number): void {
    this.varint(BigInt((field << 3) | wire));
  }

  int(field: number, v: number | bigint): this {
    this.tag(field, 0);
    this.varint(BigInt(v));
    return this;
  }

  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.push(b);
    return this;
  }

  bytes(field: number, b: Bytes): this {
    this.tag(field, 2);
    this.varint(BigInt(b.length));
    this.push(b);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  message(field: number, w: Writer): this {
    return this.bytes(field, w.finish());
  }

  finish(): Bytes {
    const out = new Uint8Array(this.size);
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

export type AttrValue = number | number[] | { float: number };

export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  domain?: string;
  attrs?: Record<string, AttrValue>;
}

export interface OnnxInitializer {
  name: string;
  type: number;
  dims: number[];
  data: ArrayBufferView;
}

export interface OnnxValueInfo {
  name: string;
  type: number;
  /** A number is a fixed size, a string a symbolic one. */
  dims: (number | string)[];
}

function attribute(name: string, v: AttrValue): Writer {
  const w = new Writer().string(1, name);
  // AttributeProto.type: FLOAT 1, INT 2, INTS 7.
  if (typeof v === 'number') return w.int(3, v).int(20, 2);
  if (Array.isArray(v)) {
    for (const x of v) w.int(8, x);
    return w.int(20, 7);
  }
  return w.float(2, v.float).int(20, 1);
}

function valueInfo(v: OnnxValueInfo): Writer {
  const shape = new Writer();
  for (const d of v.dims) shape.message(1, typeof d === 'number' ? new Writer().int(1, d) : new Writer().string(2, d));
  const tensorType = new Writer().int(1, v.type).message(2, shape);
  return new Writer().string(1, v.name).message(2, new Writer().message(1, tensorType));
}

/**
 * The name encodeModel gives the node at `index` of the graph: its op type and index. onnxruntime
 * keeps it through its graph optimizations (a node it fuses gets a new name) and its profiler reports
 * it, so a profile can be traced back to the graph as built.
 */
export function onnxNodeName(node: Pick<OnnxNode, 'op'>, index: number): string {
  return `${node.op}_${index}`;
}

/** A ModelProto (IR version 8) with the default and com.microsoft operator sets. */
export function encodeModel(g: { name: string; nodes: OnnxNode[]; initializers: OnnxInitializer[]; inputs: OnnxValueInfo[]; outputs: OnnxValueInfo[] }, opset = 17): Uint8Array {
  const graph = new Writer();
  g.nodes.forEach((n, i) => {
    const w = new Writer();
    for (const s of n.inputs) w.string(1, s);
    for (const s of n.outputs) w.string(2, s);
    w.string(3, onnxNodeName(n, i)).string(4, n.op);
    for (const [k, v] of Object.entries(n.attrs ?? {})) w.message(5, attribute(k, v));
    if (n.domain) w.string(7, n.domain);
    graph.message(1, w);
  });
  graph.string(2, g.name);
  for (const t of g.initializers) {
    const w = new Writer();
    for (const d of t.dims) w.int(1, d);
    w.int(2, t.type).string(8, t.name).bytes(9, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    graph.message(5, w);
  }
  for (const v of g.inputs) graph.message(11, valueInfo(v));
  for (const v of g.outputs) graph.message(12, valueInfo(v));
  return new Writer()
    .int(1, 8)
    .string(2, 'webq-bench')
    .message(7, graph)
    .message(8, new Writer().string(1, '').int(2, opset))
    .message(8, new Writer().string(1, 'com.microsoft').int(2, 1))
    .finish();
}

/** Builds a graph node by node; every value gets a fresh name. */
export class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxInitializer[] = [];
  private n = 0;

  fresh(prefix: string): string {
    return `${prefix}_${this.n++}`;
  }

  init(type: number, dims: number[], data: ArrayBufferView, prefix = 'w'): string {
    const name = this.fresh(prefix);
    this.initializers.push({ name, type, dims, data });
    return name;
  }

  f32(dims: number[], data: Float32Array | number[]): string {
    return this.init(OnnxType.FLOAT, dims, data instanceof Float32Array ? data : Float32Array.from(data));
  }

  i64(values: number[]): string {
    return this.init(OnnxType.INT64, [values.length], BigInt64Array.from(values.map(BigInt)), 'c');
  }

  /** One node; returns its outputs (`outputs` of them). */
  op(op: string, inputs: string[], attrs?: Record<string, AttrValue>, opts: { outputs?: number; domain?: string } = {}): string[] {
    const outputs = Array.from({ length: opts.outputs ?? 1 }, () => this.fresh(op));
    this.nodes.push({ op, inputs, outputs, attrs, domain: opts.domain });
    return outputs;
  }

  /** A one-output node. */
  op1(op: string, inputs: string[], attrs?: Record<string, AttrValue>, domain?: string): string {
    return this.op(op, inputs, attrs, { domain })[0];
  }
}
