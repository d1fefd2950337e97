/**
 * The service logger: pino, JSON lines. Authorization headers are redacted wherever they appear;
 * keys are never logged by our code, and this is the backstop if a header object is.
 */
import { pino, type Logger } from 'pino';

export const REDACT_PATHS = [
  'req.headers.authorization',
  'request.headers.authorization',
  'headers.authorization',
  'authorization',
  'key',
  'adminKey',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const opts = {
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    // The full cause chain of a 5xx goes to the log (and only there).
    serializers: { err: pino.stdSerializers.errWithCause },
  };
  return destination ? pino(opts, destination) : pino(opts);
}
