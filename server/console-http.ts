import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import type { Logger } from '../kernel/logger';
import { adminTokenCheck } from './admin-token';
import { ConsoleApi, isActionName } from './console-api';
import { toServiceError } from './domain-errors';
import { FIELD_KEY, REASON_KEY, invalidArgument, statusName, toStatus } from './errors';
import type { HttpRoute } from './metrics';
import { CallContext, UnaryContext } from './transport';

/** Where the page's files are: console/static/ of the checkout (this file runs from dist/server/). */
const STATIC_DIR = path.join(__dirname, '..', '..', 'console', 'static');

/** The page's files, by the path under /console/ they are served at. */
const FILES: Record<string, { file: string; type: string }> = {
  '': { file: 'index.html', type: 'text/html; charset=utf-8' },
  'console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  'console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
};

/** How long a read, and an action, may run before it is cut (as a gRPC deadline would). */
const READ_TIMEOUT_MS = 10_000;
const ACTION_TIMEOUT_MS = 60_000;
/** The largest action body taken. */
const MAX_BODY_BYTES = 64 * 1024;

/** Every answer: never cached (it holds stock data), never sniffed into another type. */
const COMMON_HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' };
/** The page: its own files only (no inline script, nothing from elsewhere), never framed. */
const PAGE_HEADERS = {
  ...COMMON_HEADERS,
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'referrer-policy': 'no-referrer',
};

/** HTTP status of each gRPC status an API call can end with. */
const HTTP_STATUS: Partial<Record<status, number>> = {
  [status.INVALID_ARGUMENT]: 400,
  [status.UNAUTHENTICATED]: 401,
  [status.PERMISSION_DENIED]: 403,
  [status.NOT_FOUND]: 404,
  [status.ALREADY_EXISTS]: 409,
  [status.FAILED_PRECONDITION]: 409,
  [status.ABORTED]: 409,
  [status.RESOURCE_EXHAUSTED]: 429,
  [status.UNIMPLEMENTED]: 501,
  [status.UNAVAILABLE]: 503,
  [status.CANCELLED]: 503,
  [status.DEADLINE_EXCEEDED]: 504,
};

/**
 * The web console's routes on the metrics port, all under /console/:
 *
 *   GET  /console/                        the page (and its console.js, console.css): no data in it
 *   GET  /console/api/overview?q=PREFIX   health, breakers, ledger lag, the SKUs' stock, recent events
 *   GET  /console/api/partitions?sku=SKU  ListPartitions of one SKU
 *   POST /console/api/rebalance|drain|reconcile   the AdminService call, its request as JSON
 *
 * Every /console/api/ call needs `Authorization: Bearer <ADMIN_TOKEN>` (compared in constant time,
 * as AdminService does); without it the answer is 401 and holds nothing. The page keeps the token
 * in sessionStorage and sends it as that header, never as a cookie, so another site cannot make a
 * browser call the API with it (no CSRF). Actions take `application/json` only. Errors are JSON:
 * `{"error": {"code", "reason", "field", "message"}}`, with the code, reason and field the gRPC
 * call would have had (`field` names the bad input, e.g. `target_pool`).
 */
export function consoleRoutes(api: ConsoleApi, adminToken: string, logger: Logger): HttpRoute {
  const files = new Map(Object.entries(FILES).map(([at, { file, type }]) => [at, { body: readFileSync(path.join(STATIC_DIR, file)), type }]));
  const authorized = adminTokenCheck(adminToken);

  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://console');
    if (url.pathname === '/console') {
      res.writeHead(308, { ...COMMON_HEADERS, location: '/console/' }).end();
      return true;
    }
    if (!url.pathname.startsWith('/console/')) return false;
    const at = url.pathname.slice('/console/'.length);
    if (!at.startsWith('api/')) {
      const file = files.get(at);
      if (!file) sendJson(res, 404, { error: { code: 'NOT_FOUND', message: `no ${url.pathname} here` } });
      else if (req.method !== 'GET' && req.method !== 'HEAD') sendJson(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'GET only' } }, { allow: 'GET, HEAD' });
      else res.writeHead(200, { ...PAGE_HEADERS, 'content-type': file.type }).end(req.method === 'HEAD' ? undefined : file.body);
      return true;
    }
    if (!authorized(req.headers.authorization)) {
      sendJson(res, 401, { error: { code: 'UNAUTHENTICATED', message: 'the console API requires "Authorization: Bearer <ADMIN_TOKEN>"' } }, { 'www-authenticate': 'Bearer' });
      return true;
    }
    answerApi(api, at.slice('api/'.length), url.searchParams, req, res).catch((err: unknown) => sendError(res, err, logger));
    return true;
  };
}

async function answerApi(api: ConsoleApi, name: string, query: URLSearchParams, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (name === 'overview' || name === 'partitions') {
    if (req.method !== 'GET') return sendJson(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'GET only' } }, { allow: 'GET' });
    const ctx = httpCallContext(res, READ_TIMEOUT_MS);
    const answer = name === 'overview' ? await api.overview(query.get('q') ?? '', ctx) : await api.partitions(query.get('sku') ?? '', ctx);
    return sendJson(res, 200, answer);
  }
  if (!isActionName(name)) return sendJson(res, 404, { error: { code: 'NOT_FOUND', message: `no API call ${name}` } });
  if (req.method !== 'POST') return sendJson(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'POST only' } }, { allow: 'POST' });
  if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
    return sendJson(res, 415, { error: { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'send the request as Content-Type: application/json' } });
  }
  const body = await readJson(req);
  sendJson(res, 200, await api.act(name, body, httpCallContext(res, ACTION_TIMEOUT_MS)));
}

/** The request body as JSON; INVALID_ARGUMENT on `body` when it is not JSON or too large. */
async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw invalidArgument('body', `must be at most ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw invalidArgument('body', 'is not JSON');
  }
}

/**
 * A console call seen as a gRPC call's context by the handlers (the transport's UnaryContext): a
 * deadline, and cancelled once the browser has gone (the connection closed before the answer), so
 * no new step starts for nobody.
 */
function httpCallContext(res: ServerResponse, timeoutMs: number): CallContext {
  const ctx = new UnaryContext(Date.now() + timeoutMs, new Metadata());
  res.once('close', () => {
    if (!res.writableFinished) ctx.cancel();
  });
  return ctx;
}

/** An error as the gRPC call would have had it (server/errors.ts toStatus), as JSON; internal ones logged, never sent. */
function sendError(res: ServerResponse, err: unknown, logger: Logger): void {
  const failure = toStatus(toServiceError(err));
  if (failure.internal) logger.error({ err: (err as { cause?: unknown }).cause ?? err, code: failure.code }, 'console: API call failed');
  const [reason] = failure.metadata.get(REASON_KEY);
  const [field] = failure.metadata.get(FIELD_KEY);
  const error = { code: statusName(failure.code), reason, ...(field === undefined ? {} : { field }), message: failure.details };
  if (res.headersSent) return void res.destroy();
  sendJson(res, HTTP_STATUS[failure.code] ?? 500, { error });
}

function sendJson(res: ServerResponse, code: number, value: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(code, { ...COMMON_HEADERS, 'content-type': 'application/json', ...headers }).end(`${JSON.stringify(value)}\n`);
}
