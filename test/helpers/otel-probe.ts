/**
 * Run by test/observability/tracing-off.test.ts as a child process: records the @opentelemetry
 * modules loaded (module hooks, $OTEL_PROBE_OUT) while an app configured from the environment
 * starts, takes an asynchronous grant over HTTP, runs its job, and stops. Prints the write's
 * propagation status and the job's trace_parent column.
 */
import { register } from 'node:module';

register(new URL('./otel-probe-hooks.mjs', import.meta.url));

const { createApp } = await import('../../src/app.ts');
const { loadConfig } = await import('../../src/config/config.ts');
const key = 'probe-admin-key-0123456789abcdefghijklmnopqrstuvwxyz';
const app = createApp(loadConfig({ db: process.argv[2]!, host: '127.0.0.1', port: 0, logLevel: 'silent', adminKey: key }));
const { url } = await app.start();
const call = async (method: string, path: string, body?: unknown) => {
  const r = await fetch(`${url}/v1/organizations/acme${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return r.json() as Promise<{ propagation?: { status: string } }>;
};
await call('PUT', '', {});
await call('PUT', '/permissions/doc.read', { risk: 'standard' });
await call('PUT', '/roles/viewer', { permissions: ['doc.read'] });
await call('PUT', '/resources/doc/d1', {});
await call('PUT', '/subjects/ann', { kind: 'user' });
await call('PUT', '/groups/eng', {});
await call('POST', '/assignments', { principal: 'group:eng', role: 'viewer', resource: 'doc:d1' });
const w = await call('PUT', '/groups/eng/members/ann');
const busy = () => app.lockstep.listJobs({ states: ['pending', 'running', 'retrying'] });
for (let i = 0; i < 1000 && (await busy()).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
const jobs = await app.db.all<{ trace_parent: string | null }>('SELECT trace_parent FROM jobs');
await app.stop();
process.stdout.write(`${JSON.stringify({ status: w.propagation?.status, traceParents: jobs.map((j) => j.trace_parent) })}\n`);
