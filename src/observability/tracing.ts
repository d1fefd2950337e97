/**
 * Optional OpenTelemetry tracing, off by default (ADR 0016). Everything Lockstep traces goes
 * through this one module: the rest of the code sees `Tracing` and `TraceSpan`, never OpenTelemetry.
 *
 * Off (`LOCKSTEP_TRACING` unset or `off`): `NO_TRACING`, whose calls do nothing; no OpenTelemetry
 * module is even loaded (the imports below are type-only; `createTracing` imports the SDK
 * dynamically, and only it). On: a tracer provider of our own — not registered globally, so an
 * application embedding Lockstep keeps its own — with an AsyncLocalStorage context manager, also
 * our own.
 *
 * The spans of one change form one trace across the asynchronous hops: the HTTP request, the
 * policy write in it, then — later, maybe in another process — the reconciliation batch that
 * carried the write's job, and each delivery of the events that batch (or the write) recorded.
 * Those hops cross the database, so the parent travels with the rows as a W3C `traceparent`
 * (`jobs.trace_parent`, `delivery_events.trace_parent`, migration 017).
 */
import type { Context, Span } from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';

export type SpanAttributes = Record<string, string | number | boolean | undefined>;

export interface TraceSpan {
  /** This span as a W3C traceparent, to store beside the work it hands on; undefined when off. */
  readonly traceparent: string | undefined;
  setAttributes(attrs: SpanAttributes): void;
  /** Marks the span failed with the error's name and code (never its message: it may hold input). */
  fail(error: unknown): void;
  end(attrs?: SpanAttributes): void;
}

export interface Tracing {
  readonly enabled: boolean;
  /**
   * Starts a span: a child of `parent` (a stored traceparent) when given, else of the span active
   * here (see `run`), else a root.
   */
  start(name: string, attrs?: SpanAttributes, parent?: string | null): TraceSpan;
  /** Runs `fn` with `span` active, so that the spans `fn` starts are its children. */
  run<T>(span: TraceSpan, fn: () => T): T;
  /** `fn` inside a span of its own, ended (and failed, if `fn` throws) when `fn` settles. */
  trace<T>(name: string, attrs: SpanAttributes, fn: (span: TraceSpan) => Promise<T>, parent?: string | null): Promise<T>;
  /** Flushes and stops the exporter. */
  shutdown(): Promise<void>;
}

const NO_SPAN: TraceSpan = { traceparent: undefined, setAttributes() {}, fail() {}, end() {} };

/** Tracing off: nothing is created, nothing is loaded. */
export const NO_TRACING: Tracing = {
  enabled: false,
  start: () => NO_SPAN,
  run: (_span, fn) => fn(),
  trace: (_name, _attrs, fn) => fn(NO_SPAN),
  shutdown: async () => {},
};

export type TracingExporter = 'otlp' | 'console';

export interface TracingOptions {
  /**
   * `otlp`: OTLP over HTTP to the collector the standard OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT
   * variables name (default http://localhost:4318/v1/traces); `console`: spans on stdout; or an
   * exporter of your own (tests: an InMemorySpanExporter), whose spans are passed on one by one.
   */
  exporter: TracingExporter | SpanExporter;
  serviceName?: string;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const clean = (attrs: SpanAttributes | undefined) =>
  Object.fromEntries(Object.entries(attrs ?? {}).filter((e): e is [string, string | number | boolean] => e[1] !== undefined));

export async function createTracing(opts: TracingOptions): Promise<Tracing> {
  const [api, sdk, hooks, resources] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/context-async-hooks'),
    import('@opentelemetry/resources'),
  ]);
  let exporter: SpanExporter;
  if (opts.exporter === 'otlp') exporter = new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter();
  else if (opts.exporter === 'console') exporter = new sdk.ConsoleSpanExporter();
  else exporter = opts.exporter;
  const custom = typeof opts.exporter === 'object';
  const provider = new sdk.BasicTracerProvider({
    resource: resources.resourceFromAttributes({ 'service.name': opts.serviceName ?? 'lockstep' }),
    // Batched to a collector; one by one to a test's exporter, so a test reads them at once.
    spanProcessors: [custom ? new sdk.SimpleSpanProcessor(exporter) : new sdk.BatchSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer('lockstep');
  const contexts = new hooks.AsyncLocalStorageContextManager().enable();

  const spans = new WeakMap<TraceSpan, Span>();
  const parentContext = (parent: string | null | undefined): Context => {
    const m = parent ? TRACEPARENT.exec(parent) : null;
    if (!m) return contexts.active();
    return api.trace.setSpanContext(api.ROOT_CONTEXT, { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16), isRemote: true });
  };
  const wrap = (span: Span): TraceSpan => {
    const sc = span.spanContext();
    const t: TraceSpan = {
      traceparent: `00-${sc.traceId}-${sc.spanId}-${sc.traceFlags.toString(16).padStart(2, '0')}`,
      setAttributes: (attrs) => void span.setAttributes(clean(attrs)),
      fail(error) {
        const e = error as { name?: string; code?: unknown };
        span.setStatus({ code: api.SpanStatusCode.ERROR, message: typeof e?.code === 'string' ? e.code : (e?.name ?? 'Error') });
        span.setAttribute('error.type', typeof e?.code === 'string' ? e.code : (e?.name ?? 'Error'));
      },
      end(attrs) {
        if (attrs) span.setAttributes(clean(attrs));
        span.end();
      },
    };
    spans.set(t, span);
    return t;
  };

  const tracing: Tracing = {
    enabled: true,
    start: (name, attrs, parent) => wrap(tracer.startSpan(name, { attributes: clean(attrs) }, parentContext(parent))),
    run(span, fn) {
      const s = spans.get(span);
      return s ? contexts.with(api.trace.setSpan(contexts.active(), s), fn) : fn();
    },
    async trace(name, attrs, fn, parent) {
      const span = tracing.start(name, attrs, parent);
      try {
        return await tracing.run(span, () => fn(span));
      } catch (e) {
        span.fail(e);
        throw e;
      } finally {
        span.end();
      }
    },
    async shutdown() {
      await provider.shutdown();
      contexts.disable();
    },
  };
  return tracing;
}

/**
 * A `Tracing` to hand the services at construction, pointed at the real one once `createTracing`
 * has loaded (createApp's start); until then, and when tracing is off, it is NO_TRACING.
 */
export function deferredTracing(): Tracing & { use(t: Tracing): void } {
  let impl: Tracing = NO_TRACING;
  return {
    get enabled() {
      return impl.enabled;
    },
    use: (t) => void (impl = t),
    start: (name, attrs, parent) => impl.start(name, attrs, parent),
    run: (span, fn) => impl.run(span, fn),
    trace: (name, attrs, fn, parent) => impl.trace(name, attrs, fn, parent),
    shutdown: () => impl.shutdown(),
  };
}
