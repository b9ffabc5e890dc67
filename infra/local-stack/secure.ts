/**
 * The secured stack's key material, generated on its first start under
 * `<stack home>/secure` (git-ignored, never committed) and reused after:
 *
 * - `tls/ca.pem` + `ca.key`: a local certificate authority;
 * - `tls/server.pem` + `server.key`: the servers' certificate (SANs
 *   127.0.0.1 and localhost; server and client auth, since the Kafka broker
 *   also presents it to its controller), and `server.p12` / `truststore.p12`
 *   (PKCS12) for the JVMs;
 * - `tls/client.pem` + `client.key`: the certificate Node clients present to
 *   Cassandra, which requires one;
 * - `tls/registry-token.key` + `.pub`: the RSA key that signs the schema
 *   registry's bearer tokens (the registry holds only the public half);
 * - `credentials.json` (mode 0600): the PKCS12 store password, Kafka's SCRAM
 *   users (broker, admin, one per worker), Cassandra's superuser and the
 *   registry token (RS256, one year, re-issued a month before it expires).
 *
 * Idempotent: what exists is kept; a new worker in the ACL table gets a new
 * password; a missing CA regenerates every certificate.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SECURED_WORKERS, workerPrincipal, type SecuredWorker } from '../acls.js';
import { findJava } from './java.js';

export interface Credentials {
  username: string;
  password: string;
}

export interface SecureCredentials {
  /** Password of every PKCS12 store (the JVMs need one; the files are 0600 anyway). */
  storePassword: string;
  kafka: {
    /** The broker's own SCRAM user (inter-broker listener); a super user. */
    broker: Credentials;
    /** Setup principal (topics, ACLs); a super user. */
    admin: Credentials;
    workers: Record<SecuredWorker, Credentials>;
  };
  cassandra: {
    /** The superuser created at first start; the default cassandra role is disabled. */
    admin: Credentials;
  };
  registry: {
    /** Bearer token (a JWT signed with registry-token.key) the registry's OIDC layer verifies offline. */
    token: string;
  };
}

export interface TlsFiles {
  ca: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  serverKeystore: string;
  truststore: string;
  clientCert: string;
  clientKey: string;
  /** RSA private key (PKCS8 PEM) signing registry tokens, and its public half (SPKI DER, base64) for the registry. */
  tokenKey: string;
  tokenPublicKey: string;
}

export interface SecureMaterial {
  /** `<stack home>/secure`. */
  dir: string;
  tls: TlsFiles;
  credentials: SecureCredentials;
  credentialsFile: string;
  /** Where `stack up --secure` writes one env file per principal. */
  envDir: string;
}

/** The Kafka principal the broker's certificate maps to (controller listener, mutual TLS). */
export const BROKER_CERT_PRINCIPAL = 'loopline-server';
const CLIENT_CERT_CN = 'loopline-client';
/** The registry accepts only tokens with this issuer and audience. */
export const REGISTRY_TOKEN_ISSUER = 'loopline-local-stack';
export const REGISTRY_TOKEN_AUDIENCE = 'loopline-schema-registry';
const TOKEN_LIFETIME_S = 365 * 24 * 3600;
const TOKEN_RENEW_BEFORE_S = 30 * 24 * 3600;

export function secureDir(home: string): string {
  return path.join(home, 'secure');
}

function password(): string {
  return crypto.randomBytes(18).toString('base64url');
}

function readCredentials(file: string): Partial<SecureCredentials> | null {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<SecureCredentials>;
  } catch {
    return null;
  }
}

function ensureCredentials(file: string, dataExists: boolean): SecureCredentials {
  const old = readCredentials(file);
  if (!old && dataExists) {
    throw new Error(`${file} is missing but the secure stack has data: its users cannot be recovered; run \`stack down --secure --wipe\` and start again`);
  }
  const workers = Object.fromEntries(
    SECURED_WORKERS.map((w) => [w, old?.kafka?.workers?.[w] ?? { username: workerPrincipal(w), password: password() }]),
  ) as Record<SecuredWorker, Credentials>;
  const creds: SecureCredentials = {
    storePassword: old?.storePassword ?? password(),
    kafka: {
      broker: old?.kafka?.broker ?? { username: 'loopline-broker', password: password() },
      admin: old?.kafka?.admin ?? { username: 'admin', password: password() },
      workers,
    },
    cassandra: { admin: old?.cassandra?.admin ?? { username: 'loopline_admin', password: password() } },
    registry: { token: old?.registry?.token ?? '' },
  };
  return creds;
}

function saveCredentials(file: string, creds: SecureCredentials): void {
  const text = JSON.stringify(creds, null, 2) + '\n';
  let old: string | null = null;
  try {
    old = fs.readFileSync(file, 'utf8');
  } catch {
    // first start
  }
  if (old !== text) fs.writeFileSync(file, text, { mode: 0o600 });
}

/** A JWT the registry accepts: RS256 with our key, our issuer and audience. */
export function signRegistryToken(privateKeyPem: string | Buffer, claims: Record<string, unknown> = {}, lifetimeS = TOKEN_LIFETIME_S): string {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = b64({ alg: 'RS256', typ: 'JWT' });
  const body = b64({ iss: REGISTRY_TOKEN_ISSUER, aud: REGISTRY_TOKEN_AUDIENCE, sub: 'loopline', iat: now, exp: now + lifetimeS, ...claims });
  const signature = crypto.sign('sha256', Buffer.from(`${head}.${body}`), privateKeyPem).toString('base64url');
  return `${head}.${body}.${signature}`;
}

/** Whether a token was signed by this key and is valid for at least another month. */
function tokenStillGood(token: string, publicKeyB64: string): boolean {
  const [head, body, signature] = token.split('.');
  if (!head || !body || !signature) return false;
  const key = crypto.createPublicKey({ key: Buffer.from(publicKeyB64, 'base64'), format: 'der', type: 'spki' });
  if (!crypto.verify('sha256', Buffer.from(`${head}.${body}`), key, Buffer.from(signature, 'base64url'))) return false;
  const { exp } = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as { exp?: number };
  return typeof exp === 'number' && exp - Date.now() / 1000 > TOKEN_RENEW_BEFORE_S;
}

function openssl(args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): void {
  try {
    execFileSync('openssl', args, { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args[0]} failed (is OpenSSL installed?): ${(err as Error).message}\n${stderr}`);
  }
}

/** A key and a certificate signed by the CA, with the given extensions. */
function issue(dir: string, name: string, subject: string, extensions: string[]): void {
  const ext = path.join(dir, `${name}.ext`);
  fs.writeFileSync(ext, extensions.join('\n') + '\n');
  openssl(['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
  openssl(
    ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-set_serial', `0x${crypto.randomBytes(12).toString('hex')}`, '-days', '825', '-sha256', '-extfile', ext, '-out', `${name}.pem`],
    dir,
  );
  fs.rmSync(path.join(dir, `${name}.csr`), { force: true });
  fs.rmSync(ext, { force: true });
  fs.chmodSync(path.join(dir, `${name}.key`), 0o600);
}

function ensureTls(dir: string, storePassword: string, progress: (m: string) => void): TlsFiles {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const f = (name: string) => path.join(dir, name);
  const files = tlsFiles(dir);
  const have = (p: string) => fs.existsSync(p);
  // The store password reaches openssl and keytool through the environment, never a command line.
  const storeEnv = { ...process.env, LOOPLINE_STORE_PASSWORD: storePassword };
  if (!have(files.ca) || !have(files.caKey)) {
    progress('secure: generating a local certificate authority and certificates (first secure start)');
    for (const p of Object.values(files)) fs.rmSync(p, { force: true });
    openssl(
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '3650', '-sha256', '-subj', '/CN=Loopline local CA',
        '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
      dir,
    );
    fs.chmodSync(files.caKey, 0o600);
  }
  if (!have(files.serverCert) || !have(files.serverKey)) {
    fs.rmSync(files.serverKeystore, { force: true });
    issue(dir, 'server', `/CN=${BROKER_CERT_PRINCIPAL}`, [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ]);
  }
  if (!have(files.clientCert) || !have(files.clientKey)) {
    issue(dir, 'client', `/CN=${CLIENT_CERT_CN}`, ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth']);
  }
  if (!have(files.serverKeystore)) {
    openssl(['pkcs12', '-export', '-in', 'server.pem', '-inkey', 'server.key', '-certfile', 'ca.pem', '-name', 'server', '-out', 'server.p12', '-passout', 'env:LOOPLINE_STORE_PASSWORD'], dir, storeEnv);
    fs.chmodSync(files.serverKeystore, 0o600);
  }
  if (!have(files.truststore)) {
    // keytool, not openssl: Java only trusts PKCS12 entries that carry its trusted-certificate attribute.
    const keytool = path.join(path.dirname(findJava([17, 21, 11, 25])), 'keytool');
    execFileSync(
      fs.existsSync(keytool) ? keytool : 'keytool',
      ['-importcert', '-noprompt', '-alias', 'loopline-ca', '-file', files.ca, '-keystore', files.truststore, '-storetype', 'PKCS12', '-storepass:env', 'LOOPLINE_STORE_PASSWORD'],
      { stdio: ['ignore', 'ignore', 'pipe'], env: storeEnv },
    );
    fs.chmodSync(files.truststore, 0o600);
  }
  if (!have(files.tokenKey) || !have(files.tokenPublicKey)) {
    const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    fs.writeFileSync(files.tokenKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    fs.writeFileSync(files.tokenPublicKey, publicKey.export({ type: 'spki', format: 'der' }).toString('base64'));
  }
  return files;
}

function tlsFiles(dir: string): TlsFiles {
  const f = (name: string) => path.join(dir, name);
  return {
    ca: f('ca.pem'), caKey: f('ca.key'), serverCert: f('server.pem'), serverKey: f('server.key'),
    serverKeystore: f('server.p12'), truststore: f('truststore.p12'), clientCert: f('client.pem'), clientKey: f('client.key'),
    tokenKey: f('registry-token.key'), tokenPublicKey: f('registry-token.pub'),
  };
}

/**
 * Generates what is missing and returns every path and secret. `dataExists`
 * says whether the secure stack already has server data (then lost
 * credentials are an error, not something to regenerate).
 */
export function ensureSecureMaterial(home: string, options: { dataExists?: boolean; progress?: (m: string) => void } = {}): SecureMaterial {
  const dir = secureDir(home);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const credentialsFile = path.join(dir, 'credentials.json');
  const credentials = ensureCredentials(credentialsFile, options.dataExists ?? false);
  const tls = ensureTls(path.join(dir, 'tls'), credentials.storePassword, options.progress ?? (() => {}));
  if (!tokenStillGood(credentials.registry.token, fs.readFileSync(tls.tokenPublicKey, 'utf8'))) {
    credentials.registry.token = signRegistryToken(fs.readFileSync(tls.tokenKey));
  }
  saveCredentials(credentialsFile, credentials);
  return { dir, tls, credentials, credentialsFile, envDir: path.join(dir, 'env') };
}

/** Reads existing material without generating anything (status, tests); null when the secure stack never started. */
export function readSecureMaterial(home: string): SecureMaterial | null {
  const dir = secureDir(home);
  const credentialsFile = path.join(dir, 'credentials.json');
  const credentials = readCredentials(credentialsFile) as SecureCredentials | null;
  if (!credentials) return null;
  return { dir, credentials, credentialsFile, envDir: path.join(dir, 'env'), tls: tlsFiles(path.join(dir, 'tls')) };
}
