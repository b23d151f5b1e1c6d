// A fake Platform for unit tests. Every call is recorded; a call whose kind (and path) is paused
// waits until the test takes it with `next()` and releases it, so a test can hold any login,
// request, storage or checkSession call in flight while others run, without sleeping.
// Requests are answered by FakeServer, which plays wxlogin's contract in memory.

export const BASE = 'https://login.test';

/** Lets every pending promise callback run (all fake calls settle on microtasks). */
export const flush = () => new Promise((resolve) => setImmediate(resolve));

const json = (statusCode, data, header = {}) => ({ statusCode, data, header });
/** As wxlogin answers an error: every 401 carries the Bearer challenge (`Basic` for `invalid_client`). */
export const error = (statusCode, code, extra = {}) =>
  json(statusCode, { error: code, message: code, request_id: 'req-test', ...extra }, challenge(statusCode, code));
const challenge = (statusCode, code) =>
  statusCode !== 401
    ? {}
    : { 'WWW-Authenticate': code === 'invalid_client' ? 'Basic realm="wxlogin"' : 'Bearer error="invalid_token"' };

export class FakeServer {
  constructor() {
    this.n = 0;
    this.ttl = 900;
    this.access = new Set();
    this.refresh = new Map(); // token -> 'live' | 'rotated' | 'revoked'
    this.overrides = [];
    this.profile = { id: 'u_1', nickname: null, avatar_url: null, phone: null, created_at: '2024-01-01T00:00:00Z' };
  }

  /** The next request to `path` gets `reply` ({statusCode, data} or a function of the request). */
  once(path, reply) {
    this.overrides.push({ path, reply });
  }

  /** Every access token issued so far is refused from now on (as after expiry). */
  expireAccessTokens() {
    this.access.clear();
  }

  issue() {
    const n = ++this.n;
    this.access.add(`A${n}`);
    this.refresh.set(`R${n}`, 'live');
    const { created_at, ...user } = this.profile;
    return json(200, {
      access_token: `A${n}`,
      token_type: 'Bearer',
      expires_in: this.ttl,
      refresh_token: `R${n}`,
      refresh_expires_in: 2592000,
      user: { ...user, is_new: n === 1 },
    });
  }

  handle(req) {
    const i = this.overrides.findIndex((o) => o.path === req.path);
    if (i >= 0) {
      const [{ reply }] = this.overrides.splice(i, 1);
      return typeof reply === 'function' ? reply(req) : reply;
    }
    const route = `${req.method} ${req.path}`;
    switch (route) {
      case 'POST /v1/auth/wechat/login':
      case 'POST /v1/auth/wechat/register':
        return this.issue();
      case 'POST /v1/auth/refresh': {
        const token = req.data.refresh_token;
        if (this.refresh.get(token) !== 'live') return error(401, 'invalid_grant');
        this.refresh.set(token, 'rotated');
        return this.issue();
      }
      case 'POST /v1/auth/logout':
        if (!this.access.has(req.token)) return error(401, 'invalid_token');
        this.access.delete(req.token);
        return json(204, '');
    }
    if (!this.access.has(req.token)) return error(401, 'invalid_token');
    switch (route) {
      case 'GET /v1/me':
        return json(200, this.profile);
      case 'PUT /v1/me':
        this.profile = { ...this.profile, nickname: req.data.nickname };
        return json(200, this.profile);
      case 'POST /v1/me/phone':
        this.profile = { ...this.profile, phone: { masked: '138****8000', country_code: '86' } };
        return json(200, this.profile);
      case 'POST /v1/me/avatar':
        this.profile = { ...this.profile, avatar_url: `${BASE}/v1/avatars/x.png` };
        return json(200, this.profile);
      case 'POST /v1/wechat/session':
        return json(204, '');
      default:
        return json(200, { ok: true, path: req.path, token: req.token });
    }
  }
}

export class FakePlatform {
  constructor({ storage = new Map(), server = new FakeServer() } = {}) {
    this.storage = storage;
    this.server = server;
    this.calls = [];
    this.pauses = [];
    this.parked = [];
    this.takers = [];
    this.codes = 0;
    this.sessionValid = true;
  }

  /** Holds calls of this kind (and path, for requests) until the test releases them. */
  pause(kind, path) {
    this.pauses.push({ kind, path });
  }

  resume(kind, path) {
    this.pauses = this.pauses.filter((p) => !(p.kind === kind && p.path === path));
  }

  /** The calls made so far of this kind (and path). */
  made(kind, path) {
    return this.calls.filter((c) => c.kind === kind && (path === undefined || c.path === path));
  }

  count(kind, path) {
    return this.made(kind, path).length;
  }

  /** The next held call of this kind (and path), waiting for one to arrive. */
  next(kind, path) {
    const match = (c) => c.kind === kind && (path === undefined || c.path === path);
    const i = this.parked.findIndex(match);
    if (i >= 0) return Promise.resolve(this.parked.splice(i, 1)[0]);
    return new Promise((resolve) => this.takers.push({ match, resolve }));
  }

  /** All the calls currently held. */
  held(kind, path) {
    return this.parked.filter((c) => c.kind === kind && (path === undefined || c.path === path));
  }

  call(kind, info, run) {
    let resolve, reject;
    const promise = new Promise((a, b) => ((resolve = a), (reject = b)));
    const call = {
      kind,
      ...info,
      /** Answers as the fake would have. */
      release: () => {
        try {
          resolve(run());
        } catch (e) {
          reject(e);
        }
      },
      resolve: (v) => resolve(v),
      /** Fails the call as the platform's `fail` callback would. */
      fail: (errMsg = `${kind}:fail`) => reject({ errMsg }),
    };
    this.calls.push(call);
    if (this.pauses.some((p) => p.kind === kind && (p.path === undefined || p.path === info.path))) {
      const t = this.takers.findIndex((w) => w.match(call));
      if (t >= 0) this.takers.splice(t, 1)[0].resolve(call);
      else this.parked.push(call);
    } else {
      call.release();
    }
    return promise;
  }

  login() {
    return this.call('login', {}, () => `C${++this.codes}`);
  }

  request(o) {
    const auth = o.header.Authorization;
    const info = {
      url: o.url,
      path: o.url.startsWith(BASE) ? o.url.slice(BASE.length) : o.url,
      method: o.method,
      header: o.header,
      data: o.data,
      token: auth ? auth.replace(/^Bearer /, '') : undefined,
    };
    return this.call('request', info, () => this.server.handle(info));
  }

  uploadFile(o) {
    const auth = o.header.Authorization;
    const info = { ...o, path: o.url.slice(BASE.length), method: 'POST', token: auth ? auth.replace(/^Bearer /, '') : undefined };
    // As wx.uploadFile: the answer's body as text and no response headers.
    return this.call('upload', info, () => {
      const r = this.server.handle(info);
      return { statusCode: r.statusCode, data: JSON.stringify(r.data), header: {} };
    });
  }

  checkSession() {
    return this.call('checkSession', {}, () => this.sessionValid);
  }

  getItem(key) {
    return this.call('getItem', { key }, () => this.storage.get(key) ?? null);
  }

  setItem(key, value) {
    return this.call('setItem', { key, value }, () => void this.storage.set(key, value));
  }

  removeItem(key) {
    return this.call('removeItem', { key }, () => void this.storage.delete(key));
  }
}

/** A clock the test moves by hand. */
export function fakeClock(start = 1_000_000) {
  const clock = { t: start, now: () => clock.t, advance: (ms) => (clock.t += ms) };
  return clock;
}
