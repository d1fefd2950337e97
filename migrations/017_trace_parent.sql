-- OpenTelemetry tracing (issue 14, ADR 0016): the span that enqueued a job, and the span that
-- recorded a delivery event, as W3C traceparents, so that a batch run later (maybe by another
-- process) and each delivery continue the write's trace. NULL when tracing is off.
ALTER TABLE jobs ADD COLUMN trace_parent TEXT;
ALTER TABLE delivery_events ADD COLUMN trace_parent TEXT;
