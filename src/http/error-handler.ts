/**
 * Every error becomes application/problem+json (RFC 9457) with a stable `code`. 4xx answers
 * say what was wrong, with field paths for schema errors; 5xx answers never carry a stack or an
 * internal message. Errors are told apart by their code alone (CodedError), never by their
 * class: whichever layer raised one, the status table (errors.ts) says how it is answered.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { isCodedError } from '../domain/index.js';
import { isErrorCode, STATUS, type ErrorCode } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The code of the problem a request was answered with, for its log line; null: none. */
    problemCode: string | null;
  }
}

interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  code: ErrorCode;
  requestId: string;
  errors?: { path: string; message: string }[];
  details?: Record<string, unknown>;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable'
};

/** Credentials a client put in the query string. */
const QUERY_CREDENTIAL = /([?&](?:token|access_token)=)[^&#]*/gi;

/** `url` with the values of query-string credentials replaced: what logs and problems show. */
export function redactQuery(url: string): string {
  return url.includes('?') ? url.replace(QUERY_CREDENTIAL, '$1[redacted]') : url;
}

export function sendProblem(
  request: FastifyRequest,
  reply: FastifyReply,
  code: ErrorCode,
  detail: string,
  extra: Pick<ProblemBody, 'errors' | 'details'> = {}
): FastifyReply {
  const status = STATUS[code].status;
  request.problemCode = code;
  const body: ProblemBody = {
    type: `urn:problem:coherency:${code.toLowerCase().replaceAll('_', '-')}`,
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    instance: redactQuery(request.url),
    code,
    requestId: request.id,
    ...extra
  };
  return reply.code(status).type('application/problem+json').header('x-request-id', request.id).send(body);
}

/** Maps fastify's own error codes (body parsing, limits) to ours. */
function fastifyCode(err: FastifyError): ErrorCode | undefined {
  switch (err.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return 'MALFORMED_JSON';
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'BODY_TOO_LARGE';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_TYPE':
      return 'UNSUPPORTED_MEDIA_TYPE';
    default:
      return err.statusCode === 400 && err instanceof SyntaxError ? 'MALFORMED_JSON' : undefined;
  }
}

interface Issue {
  readonly code?: string;
  readonly path?: readonly PropertyKey[];
  readonly message?: string;
  readonly errors?: readonly (readonly Issue[])[];
}

/**
 * Field paths and messages for a schema error. A union ("one range or a batch") fails as a
 * whole; the branch with the fewest issues is the one the caller meant, so its issues are shown.
 */
function explain(where: string, path: readonly PropertyKey[], code: string | undefined, message: string | undefined, params: unknown): { path: string; message: string }[] {
  const branches = (params as Issue | undefined)?.errors;
  if (code === 'invalid_union' && branches !== undefined && branches.length > 0) {
    const closest = [...branches].sort((a, b) => a.length - b.length)[0] ?? [];
    return closest.flatMap((i) => explain(where, [...path, ...(i.path ?? [])], i.code, i.message, i));
  }
  return [{ path: [where, ...path.map(String)].join('.'), message: message ?? 'invalid' }];
}

/**
 * Answers `err` by one lookup of its code: its status, `Retry-After` when retrying later helps,
 * `details` when it has any. An error without a code the table knows is INTERNAL.
 */
export function sendError(request: FastifyRequest, reply: FastifyReply, err: unknown): FastifyReply {
  const known = isCodedError(err) && isErrorCode(err.code);
  const code = known ? err.code : 'INTERNAL';
  const answer = STATUS[code];
  if (answer.logged !== undefined) request.log.error({ err }, answer.logged);
  if (!known) return sendProblem(request, reply, code, answer.detail ?? '');
  if (err.retryAfterSeconds !== undefined) reply.header('retry-after', String(err.retryAfterSeconds));
  return sendProblem(request, reply, code, answer.detail ?? err.message, Object.keys(err.details).length > 0 ? { details: { ...err.details } } : {});
}

export function registerErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (hasZodFastifySchemaValidationErrors(err)) {
      const where = err.validationContext ?? 'body';
      const errors = err.validation.flatMap((v) => explain(where, v.instancePath.split('/').filter((x) => x !== ''), v.keyword, v.message, v.params));
      return sendProblem(request, reply, 'VALIDATION_FAILED', `request ${err.validationContext ?? 'body'} does not match the schema`, { errors });
    }
    const mapped = fastifyCode(err);
    if (mapped !== undefined) return sendProblem(request, reply, mapped, err.message);
    return sendError(request, reply, err);
  });

  app.setNotFoundHandler((request, reply) => sendProblem(request, reply, 'ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`));
}
