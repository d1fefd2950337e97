// Module resolution hooks for test/observability/tracing-off.test.ts: every module whose URL is
// under @opentelemetry/ is appended to the file $OTEL_PROBE_OUT as it resolves.
import { appendFileSync } from 'node:fs';

export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (r.url.includes('/@opentelemetry/')) appendFileSync(process.env.OTEL_PROBE_OUT, `${r.url}\n`);
  return r;
}
