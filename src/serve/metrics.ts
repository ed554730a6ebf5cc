/**
 * What `GET /metrics` reports, in Prometheus' text format (version 0.0.4): requests by model,
 * endpoint and status; prompt and generated tokens; the last request's decode speed; request
 * time; each model's queue and GPU bytes (weights and KV cache).
 */
export interface ModelGauges {
  id: string;
  waiting: number;
  running: boolean;
  weightBytes: number;
  kvBytes: number;
}

const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const labels = (l: Record<string, string | number>) => `{${Object.entries(l).map(([k, v]) => `${k}="${esc(String(v))}"`).join(',')}}`;

export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly tokens = new Map<string, number>();
  private readonly speed = new Map<string, number>();
  private readonly duration = new Map<string, { sum: number; count: number }>();
  readonly started = Date.now();

  private static key(l: Record<string, string | number>): string {
    return JSON.stringify(l);
  }

  request(model: string, endpoint: string, status: number, seconds: number): void {
    const k = Metrics.key({ model, endpoint, status });
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
    const d = this.duration.get(endpoint) ?? { sum: 0, count: 0 };
    d.sum += seconds;
    d.count++;
    this.duration.set(endpoint, d);
  }

  usage(model: string, prompt: number, completion: number, decodeTokensPerSecond?: number): void {
    for (const [kind, n] of [['prompt', prompt], ['completion', completion]] as const) {
      const k = Metrics.key({ model, kind });
      this.tokens.set(k, (this.tokens.get(k) ?? 0) + n);
    }
    if (decodeTokensPerSecond !== undefined && decodeTokensPerSecond > 0) this.speed.set(model, decodeTokensPerSecond);
  }

  /** The exposition text, with the models' gauges read now. */
  render(models: readonly ModelGauges[]): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string, rows: [Record<string, string | number>, number][]) => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [l, v] of rows) out.push(`${name}${Object.keys(l).length ? labels(l) : ''} ${Number.isFinite(v) ? v : 0}`);
    };
    const parsed = (m: Map<string, number>) => [...m].map(([k, v]) => [JSON.parse(k) as Record<string, string | number>, v] as [Record<string, string | number>, number]);
    family('webq_requests_total', 'counter', 'Requests answered, by model, endpoint and HTTP status.', parsed(this.requests));
    family('webq_tokens_total', 'counter', 'Tokens processed: prompt tokens read and completion tokens generated.', parsed(this.tokens));
    family('webq_decode_tokens_per_second', 'gauge', "The last request's generation speed (tokens/s after the first).", [...this.speed].map(([model, v]) => [{ model }, v]));
    out.push('# HELP webq_request_duration_seconds Time from a request arriving to its last byte.', '# TYPE webq_request_duration_seconds summary');
    for (const [endpoint, d] of this.duration) out.push(`webq_request_duration_seconds_sum${labels({ endpoint })} ${d.sum}`, `webq_request_duration_seconds_count${labels({ endpoint })} ${d.count}`);
    family('webq_queue_depth', 'gauge', 'Requests waiting for the model (not counting the one running).', models.map((m) => [{ model: m.id }, m.waiting]));
    family('webq_requests_running', 'gauge', 'Requests the model is running now (0 or 1).', models.map((m) => [{ model: m.id }, m.running ? 1 : 0]));
    family('webq_gpu_bytes', 'gauge', 'GPU memory held by each model: weights and KV cache.', models.flatMap((m) => [[{ model: m.id, kind: 'weights' }, m.weightBytes], [{ model: m.id, kind: 'kv_cache' }, m.kvBytes]] as [Record<string, string>, number][]));
    family('webq_uptime_seconds', 'gauge', 'Seconds since the server started.', [[{}, (Date.now() - this.started) / 1000]]);
    return `${out.join('\n')}\n`;
  }
}
