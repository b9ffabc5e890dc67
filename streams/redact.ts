/**
 * Keeping secrets out of log lines and error messages. Pure helpers used by
 * the logger (every line, at any depth), the registry client (URLs in its
 * errors) and config (errors that name a variable without echoing it).
 *
 *   redactUrl('https://svc:s3cret@registry:8081/apis/ccompat/v7') // 'https://[Redacted]@registry:8081/apis/ccompat/v7'
 *   redactText('fetch http://u:p@h/x failed')                      // 'fetch http://[Redacted]@h/x failed'
 *   redactDeep({ kafka: { sasl: { password: 'p' } } })            // { kafka: { sasl: '[Redacted]' } }
 */

export const REDACTED = '[Redacted]';

/** Keys whose whole value is a secret (or a bag of them), matched after dropping case, '_', '-' and '.'. */
const SECRET_WORDS = /password|passwd|passphrase|secret|credential|authorization|cookie|sasl|basicauth|authprovider|privatekey|apikey|accesskey|clientkey|signingkey|encryptionkey|jaas/;
/** Normalised keys that are secrets when they end this way: LOOPLINE_SCHEMA_REGISTRY_AUTH, accessToken, LOOPLINE_X_SECRET. */
const SECRET_SUFFIX = /(auth|token|pwd|secret)$/;
/** Environment-style names ending in _KEY (LOOPLINE_SSL_KEY): a key file or value. */
const ENV_KEY = /^[A-Z0-9]+(_[A-Z0-9]+)*_KEY$/;
/** Parents under which `key`, `cert`, `pfx` and `passphrase` are TLS material. */
const TLS_PARENT = /^(ssl|tls|ssloptions|tlsoptions|https|sslconfig|tlsconfig)$/;
const TLS_MATERIAL = /^(key|cert|pfx|passphrase)$/;

const normalise = (key: string) => key.toLowerCase().replace(/[-_.\s]/g, '');

/** Whether the value under `key` (inside an object held by `parent`) is a credential and must not be logged. */
export function isSecretKey(key: string, parent?: string): boolean {
  const k = normalise(key);
  if (SECRET_WORDS.test(k) || SECRET_SUFFIX.test(k) || k === 'pass' || k === 'pfx') return true;
  if (ENV_KEY.test(key)) return true;
  return parent !== undefined && TLS_PARENT.test(normalise(parent)) && TLS_MATERIAL.test(k);
}

/** Environment variables holding secrets: LOOPLINE_*_PASSWORD, *_AUTH, *_SECRET, *_TOKEN, *_KEY, *_CREDENTIALS. */
export function isSecretVariable(name: string): boolean {
  return /(^|_)(PASSWORD|PASSWD|PASSPHRASE|SECRET|TOKEN|AUTH|KEY|CREDENTIALS?)$/i.test(name);
}

// scheme://userinfo@host — greedy to the last '@' of the authority, so a password holding an unescaped '@' is covered too.
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#]*@/gi;
// scheme://user:pa/ss@host — a password with an unescaped '/' or '?' (the URL no longer parses as intended, but it must not leak).
const URL_USER_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@]*:[^\s@]*@/gi;
// Authorization header values written into text.
const AUTH_SCHEME = /\b(Basic|Bearer|Digest)\s+(?=[A-Za-z0-9+/=._~-]*[0-9+/=])[A-Za-z0-9+/=._~-]{8,}/g;
// A bare JWT (header.payload.signature, base64url; the registry's bearer tokens) anywhere in text.
const JWT = /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g;
// password=…, "token": "…", ?api_key=… in messages, query strings and echoed JSON.
const KEY_VALUE = /\b((?:[a-z0-9]+[_-])*(?:password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|auth|authorization|credentials?)["']?\s*[:=]\s*["']?)([^\s"'&,;}]+)/gi;

/** Scrubs credentials from free text: URL userinfo, Basic/Bearer tokens, bare JWTs, `password=…`-style pairs. */
export function redactText(text: string): string {
  if (text.length === 0) return text;
  return text
    .replace(URL_USER_PASSWORD, `$1${REDACTED}@`)
    .replace(URL_USERINFO, `$1${REDACTED}@`)
    .replace(AUTH_SCHEME, `$1 ${REDACTED}`)
    .replace(JWT, REDACTED)
    .replace(KEY_VALUE, (_m, prefix: string, value: string) => (value === REDACTED ? `${prefix}${value}` : `${prefix}${REDACTED}`));
}

/**
 * A URL fit for a log line or an error message: userinfo replaced by
 * `[Redacted]` and secret-looking query parameters blanked. Works on strings
 * that do not parse as URLs too (falls back to `redactText`).
 */
export function redactUrl(url: string | URL): string {
  const text = String(url);
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    return redactText(text);
  }
  const hadUserinfo = parsed.username !== '' || parsed.password !== '';
  const secretParams = [...parsed.searchParams.keys()].filter((k) => isSecretKey(k));
  if (!hadUserinfo && secretParams.length === 0) return redactText(text);
  for (const k of secretParams) parsed.searchParams.set(k, 'REDACTED');
  parsed.username = '';
  parsed.password = '';
  const clean = redactText(parsed.toString().replace(/=REDACTED\b/g, `=${REDACTED}`));
  if (!hadUserinfo) return clean;
  const scheme = `${parsed.protocol}//`;
  return `${scheme}${REDACTED}@${clean.slice(scheme.length)}`;
}

export interface RedactOptions {
  /** Levels walked below the root; deeper values become '[Depth limit]' (they might hold secrets). Default 12. */
  maxDepth?: number;
}

/**
 * A copy of `value` safe to log: secret keys censored at any depth, strings
 * scrubbed with `redactText`, errors copied with their prototype (so
 * serializers still see an Error) and their message, stack, cause and own
 * fields scrubbed. Cycles become '[Circular]'. Buffers and dates are kept.
 */
export function redactDeep<T>(value: T, options: RedactOptions = {}): T {
  return walk(value, undefined, 0, options.maxDepth ?? 12, new WeakSet()) as T;
}

function walk(value: unknown, parentKey: string | undefined, depth: number, maxDepth: number, seen: WeakSet<object>): unknown {
  if (typeof value === 'string') return redactText(value);
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Date || value instanceof RegExp || ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return value;
  if (depth >= maxDepth) return '[Depth limit]';
  if (seen.has(value)) return '[Circular]';
  seen.add(value);
  try {
    if (value instanceof URL) return redactUrl(value);
    if (Array.isArray(value)) return value.map((v) => walk(v, parentKey, depth + 1, maxDepth, seen));
    if (value instanceof Map) return walk(Object.fromEntries(value), parentKey, depth, maxDepth, seen);
    if (value instanceof Error) return copyError(value, depth, maxDepth, seen);
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return walk(toJSON.call(value), parentKey, depth, maxDepth, seen);
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) {
      out[key] = isSecretKey(key, parentKey) ? REDACTED : walk(read(value, key), key, depth + 1, maxDepth, seen);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

function read(obj: object, key: string): unknown {
  try {
    return (obj as Record<string, unknown>)[key];
  } catch {
    return '[Unreadable]';
  }
}

function copyError(err: Error, depth: number, maxDepth: number, seen: WeakSet<object>): Error {
  const copy = Object.create(Object.getPrototypeOf(err) as object) as Error;
  for (const key of Object.getOwnPropertyNames(err)) {
    const desc = Object.getOwnPropertyDescriptor(err, key)!;
    const raw = 'value' in desc ? desc.value : read(err, key);
    const value = isSecretKey(key) ? REDACTED : walk(raw, key, depth + 1, maxDepth, seen);
    Object.defineProperty(copy, key, { value, enumerable: desc.enumerable, writable: true, configurable: true });
  }
  return copy;
}
