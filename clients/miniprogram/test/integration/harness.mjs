// Starts the real wxlogin binary with the WeChat simulator, and a fake `wx` for the client:
// `login()` mints codes from the simulator's control API (as WeChat would for a user), `request()`
// uses fetch, `uploadFile()` POSTs the file as multipart/form-data with fetch, storage is a Map.
// `stack.importUsers()` runs `wxlogin users import` on the server's database.
//
// The binary: $WXLOGIN_BIN, else <repo>/target/debug/wxlogin (`cargo build -p wxlogin`).
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createAuthClient, wxPlatform } from '../../dist/index.mjs';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
export const BIN = process.env.WXLOGIN_BIN || join(repo, 'target', 'debug', 'wxlogin');

export const DEMO_APP = { appid: 'wx0000000000000001', secret: '0123456789abcdef0123456789abcdef' };

const children = new Set();
// A test file that crashes still takes its processes with it.
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function start(args, logFile) {
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  children.add(child);
  child.output = '';
  const keep = (chunk) => {
    child.output += chunk;
    writeFileSync(logFile, child.output);
  };
  child.stdout.setEncoding('utf8').on('data', keep);
  child.stderr.setEncoding('utf8').on('data', keep);
  child.exited = new Promise((resolve) => child.on('exit', resolve));
  child.exited.then(() => children.delete(child));
  return child;
}

async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await child.exited;
  clearTimeout(timer);
}

/** Resolves with the first match of `pattern` in the child's output (ANSI colours removed). */
async function waitForOutput(child, pattern, what) {
  for (let i = 0; i < 400; i++) {
    const match = pattern.exec(child.output.replace(/\x1b\[[0-9;]*m/g, ''));
    if (match) return match;
    if (child.exitCode !== null) break;
    await sleep(25);
  }
  throw new Error(`${what} did not start:\n${child.output}`);
}

async function waitForHealth(url, child) {
  for (let i = 0; i < 400; i++) {
    if (child.exitCode !== null) break;
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await sleep(25);
  }
  throw new Error(`wxlogin did not become healthy at ${url}:\n${child.output}`);
}

const toml = (value) => JSON.stringify(value);

/** Runs the binary to completion; resolves with its output, rejects with it when it fails. */
function runToEnd(args) {
  return new Promise((resolve, reject) => {
    execFile(BIN, args, { env: { ...process.env, NO_COLOR: '1' } }, (error, stdout, stderr) => {
      if (error) reject(new Error(`wxlogin ${args.join(' ')}: ${error.message}\n${stdout}${stderr}`));
      else resolve(stdout + stderr);
    });
  });
}

/**
 * The simulator and wxlogin, on free ports, with a fresh SQLite database in a temporary directory.
 * `apps`: [{ appid, secret, registration? }]; `tokens`: extra `[tokens]` keys; `phones`: numbers
 * imported with `wxlogin users import` before the server starts.
 */
export async function startStack({ apps = [DEMO_APP], tokens = {}, phones = [] } = {}) {
  if (!existsSync(BIN)) {
    throw new Error(`wxlogin binary not found at ${BIN}: run \`cargo build -p wxlogin\` or set WXLOGIN_BIN`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'wxlogin-client-'));
  const started = [];
  const stop = async () => {
    await Promise.all(started.map(stopChild));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const mockConfig = join(dir, 'simulator.toml');
    writeFileSync(
      mockConfig,
      apps.map((a) => `[[apps]]\nappid = ${toml(a.appid)}\nsecret = ${toml(a.secret)}\n`).join('\n'),
    );
    const mock = start(['mock-wechat', '--listen', '127.0.0.1:0', '--config', mockConfig], join(dir, 'simulator.log'));
    started.push(mock);
    const [, mockAddr] = await waitForOutput(mock, /SIMULATOR listening.*?addr=(\S+)/, 'the simulator');
    const mockURL = `http://${mockAddr}`;

    const port = await freePort();
    const serverURL = `http://127.0.0.1:${port}`;
    const config = join(dir, 'wxlogin.toml');
    writeFileSync(
      config,
      [
        '[server]',
        `listen = ${toml(`127.0.0.1:${port}`)}`,
        `data_dir = ${toml(join(dir, 'data'))}`,
        // A test server on loopback: its issuer and avatar URLs are http://127.0.0.1.
        'allow_insecure_public_url = true',
        '[security]',
        `sealing_key = ${toml(randomBytes(32).toString('hex'))}`,
        '[tokens]',
        ...Object.entries(tokens).map(([k, v]) => `${k} = ${toml(v)}`),
        '[wechat]',
        `base_url = ${toml(mockURL)}`,
        '[log]',
        'level = "warn,wxlogin=info"',
        // Off: servers of tests running side by side would all want 127.0.0.1:9090.
        '[metrics]',
        'listen = ""',
        ...apps.flatMap((a) => [
          '[[apps]]',
          `appid = ${toml(a.appid)}`,
          `secret = ${toml(a.secret)}`,
          ...(a.registration ? [`registration = ${toml(a.registration)}`] : []),
        ]),
        '',
      ].join('\n'),
    );
    /** `wxlogin users import --config <the server's config> <csv>`: one phone number per line. */
    const importUsers = (numbers) => {
      const csv = join(dir, `import-${randomBytes(4).toString('hex')}.csv`);
      writeFileSync(csv, numbers.join('\n') + '\n');
      return runToEnd(['users', 'import', '--config', config, csv]);
    };
    if (phones.length) await importUsers(phones);
    const server = start(['serve', '--config', config, '--allow-mock'], join(dir, 'wxlogin.log'));
    started.push(server);
    await waitForHealth(`${serverURL}/healthz`, server);

    const mockPost = async (path, body) => {
      const res = await fetch(mockURL + path, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`simulator ${path}: ${res.status} ${text}`);
      return text ? JSON.parse(text) : undefined;
    };
    const stats = async () => (await (await fetch(`${mockURL}/__mock/stats`)).json()).calls;
    return { dir, config, serverURL, mockURL, mockPost, stats, stop, importUsers, logs: () => server.output };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * A fake `wx` for one simulated WeChat user on one device. `calls` records every wx call;
 * `requests` every HTTP request ({ method, path, auth }).
 */
export function fakeWx(stack, { appid = DEMO_APP.appid, user, storage = new Map(), sessionValid = true }) {
  const calls = [];
  const requests = [];
  const failWith = (fail, api) => (e) => fail({ errMsg: `${api}:fail ${e.message}` });
  const answer = async (res) => {
    const text = await res.text();
    let data = text;
    try {
      data = JSON.parse(text);
    } catch {
      // as wx.request: text that is not JSON stays text
    }
    return { statusCode: res.status, data, header: Object.fromEntries(res.headers), errMsg: 'request:ok' };
  };
  const record = (url, method, header) =>
    requests.push({ method, path: url.startsWith(stack.serverURL) ? url.slice(stack.serverURL.length) : url, auth: header.Authorization });

  return {
    calls,
    requests,
    storage,
    login({ success, fail }) {
      calls.push('login');
      stack.mockPost('/__mock/login', { appid, user }).then((r) => success({ code: r.code, errMsg: 'login:ok' }), failWith(fail, 'login'));
    },
    request({ url, method = 'GET', header = {}, data, success, fail }) {
      calls.push('request');
      record(url, method, header);
      let body;
      if (data !== undefined && method !== 'GET') {
        body = data instanceof ArrayBuffer ? new Uint8Array(data) : typeof data === 'string' ? data : JSON.stringify(data);
      }
      const headers = { 'content-type': 'application/json', ...header };
      fetch(url, { method, headers, body }).then(answer).then(success, failWith(fail, 'request'));
    },
    // As wx.uploadFile: always a multipart/form-data POST (`formData`, then the file under `name`)
    // of a known length, the answer's body as text. (fetch would stream a FormData chunked, and
    // the server answers a 401 without reading the body.)
    uploadFile({ url, filePath, name, header = {}, formData = {}, success, fail }) {
      calls.push('uploadFile');
      record(url, 'POST', header);
      readFile(filePath)
        .then(async (bytes) => {
          const form = new FormData();
          for (const [k, v] of Object.entries(formData)) form.append(k, v);
          form.append(name, new Blob([bytes]), basename(filePath));
          const multipart = new Request(url, { method: 'POST', body: form });
          const headers = { ...header, 'content-type': multipart.headers.get('content-type') };
          return fetch(url, { method: 'POST', headers, body: new Uint8Array(await multipart.arrayBuffer()) });
        })
        .then(async (res) => ({ statusCode: res.status, data: await res.text(), errMsg: 'uploadFile:ok' }))
        .then(success, failWith(fail, 'uploadFile'));
    },
    checkSession({ success, fail }) {
      calls.push('checkSession');
      if (this.sessionValid) success({ errMsg: 'checkSession:ok' });
      else fail({ errMsg: 'checkSession:fail session time out' });
    },
    sessionValid,
    getStorageSync: (key) => (storage.has(key) ? storage.get(key) : ''),
    setStorageSync: (key, value) => void storage.set(key, value),
    removeStorageSync: (key) => void storage.delete(key),
  };
}

/** A client on a fake wx for `user`. */
export function client(stack, { user, appid, storage, ...options }) {
  const wx = fakeWx(stack, { user, appid, storage });
  const auth = createAuthClient({ baseURL: stack.serverURL, platform: wxPlatform(wx), appid, ...options });
  const count = (method, path) => wx.requests.filter((r) => r.method === method && r.path === path).length;
  const logins = () => wx.calls.filter((c) => c === 'login').length;
  return { wx, auth, count, logins };
}

/** GET with a bare token, outside the client. */
export async function getWith(stack, path, token) {
  const res = await fetch(stack.serverURL + path, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json().catch(() => null) };
}

export const savedSession = (storage) => JSON.parse(storage.get('wxlogin.session'));
