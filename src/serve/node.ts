/**
 * `webq serve` on Node: the Hono app (app.ts) behind @hono/node-server, bound to 127.0.0.1 unless
 * told otherwise. close() stops accepting, answers new requests 503 while in-flight ones finish
 * (up to a grace period), then frees the models and the device.
 */
import { serve, type ServerType } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { createApp, type ServerOptions } from './app.ts';
import { Metrics } from './metrics.ts';
import type { ModelRegistry } from './models.ts';

export interface RunningServer {
  /** http://host:port */
  readonly url: string;
  readonly port: number;
  readonly metrics: Metrics;
  /** Stops the server and disposes the registry. */
  close(graceMs?: number): Promise<void>;
}

export const DEFAULT_HOST = '127.0.0.1';

export async function startServer(reg: ModelRegistry, opts: ServerOptions & { host?: string; port?: number }): Promise<RunningServer> {
  const state = { draining: false };
  const metrics = new Metrics();
  const app = createApp(reg, opts, metrics, state);
  const host = opts.host ?? DEFAULT_HOST;
  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: app.fetch, port: opts.port ?? 8080, hostname: host }, () => resolve(s));
    s.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${shown}:${port}`,
    port,
    metrics,
    close(graceMs = 10_000) {
      closing ??= (async () => {
        state.draining = true;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            (server as { closeAllConnections?: () => void }).closeAllConnections?.();
            resolve();
          }, graceMs);
          server.close(() => (clearTimeout(timer), resolve()));
          (server as { closeIdleConnections?: () => void }).closeIdleConnections?.();
        });
        // Closed connections abort their generations; let each stop at its next step before the device goes.
        for (let waited = 0; waited < 5000 && reg.list().some((m) => m.queue.busy); waited += 20) await new Promise((r) => setTimeout(r, 20));
        reg.dispose();
      })();
      return closing;
    },
  };
}
