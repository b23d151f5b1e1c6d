import { AuthError, wrapError } from './errors';
import type { Platform, PlatformResponse } from './platform';

/** The signed-in user as the server describes it (login answer or `GET /v1/me`). */
export interface AuthUser {
  id: string;
  nickname: string | null;
  avatar_url: string | null;
  /** `{ masked: "138****6666", country_code: "86" }` once a phone number is bound. */
  phone: { masked: string; country_code: string } | null;
  /** In a login answer: whether this login created the user. */
  is_new?: boolean;
  /** In a profile answer (RFC 3339). */
  created_at?: string;
}

/** What `onLoginRequired` is told. */
export interface LoginRequiredContext {
  /**
   * `phone_required`: the server wants a phone number for this new user; `registration_closed`: the
   * app admits existing users only, and one may still be found by the phone number (an operator's
   * import); `login_required`: `silentLogin` is off.
   */
  reason: 'phone_required' | 'registration_closed' | 'login_required';
  /** With `phone_required` and `registration_closed`: the ticket `loginWithPhone` completes the login with. */
  loginTicket?: string;
  /** The server's answer that led here. */
  error?: AuthError;
}

export interface AuthClientOptions {
  /**
   * wxlogin's address, e.g. `https://login.example.com`; relative request URLs are resolved on it.
   * Requests to its origin get the access token.
   */
  baseURL: string;
  /**
   * Other origins that get the access token, exactly as `scheme://host[:port]`, e.g.
   * `['https://api.example.com']`. Requests to any other origin are sent without it (and their
   * 401 answers are returned as they are).
   */
  authorizedOrigins?: string[];
  /** `wxPlatform(wx)`, `taroPlatform(Taro)` or `uniPlatform(uni)`. */
  platform: Platform;
  /** Sent with every login; needed when the server serves more than one mini program. */
  appid?: string;
  /** Storage key of the saved session. Default `wxlogin.session`. */
  storageKey?: string;
  /** Log in with `wx.login` whenever a token is needed (default). `false`: call `onLoginRequired` instead. */
  silentLogin?: boolean;
  /**
   * Called when a login needs the user (`phone_required`, `registration_closed` with a
   * `login_ticket`, or `silentLogin: false`): typically
   * navigates to the app's login page. The waiting requests resume when that page completes the
   * login through this client (`loginWithPhone`, `login`, `register`), and fail with one
   * `login_cancelled` error when the page calls `cancelLogin()` or this hook throws or rejects.
   */
  onLoginRequired?: (context: LoginRequiredContext) => unknown;
  /** Refresh this long before the access token expires (at most half its lifetime). Default 60000. */
  refreshLeewayMs?: number;
  /** Timeout of each HTTP call, in milliseconds (the platform's default otherwise). */
  timeout?: number;
  /** The clock, in milliseconds; only differences are used. Default `Date.now`. */
  now?: () => number;
}

export interface RequestOptions {
  /** A path on `baseURL` (`/api/orders`) or a full URL. */
  url: string;
  method?: string;
  /** An object (sent as JSON), a string or an ArrayBuffer. */
  data?: unknown;
  header?: Record<string, string>;
  timeout?: number;
  /**
   * `false`: no token and no login (public endpoints). Default `true`: the token goes with requests
   * to `baseURL`'s origin and to `authorizedOrigins`, never elsewhere.
   */
  auth?: boolean;
}

export interface UploadOptions {
  url: string;
  filePath: string;
  /** The multipart field of the file. */
  name: string;
  formData?: Record<string, string>;
  header?: Record<string, string>;
  timeout?: number;
  auth?: boolean;
}

/** The `detail` of a `getphonenumber` event (or anything with the same fields). */
export interface PhoneEventDetail {
  code?: string;
  errMsg?: string;
  encryptedData?: string;
  iv?: string;
}

export interface AuthEvents {
  /** A new session from a login (silent, phone, register). */
  login: AuthUser | null;
  /** The token pair was rotated. */
  refresh: AuthUser | null;
  /** The session ended: `logout()` was called, or the server no longer accepts it (`expired`). */
  logout: { reason: 'logout' | 'expired' };
  /** The profile changed (nickname, avatar, phone) or was fetched. */
  user: AuthUser;
}

export interface AuthClient {
  /** Resolves once the saved session is read: its user, or null when there is none. */
  ready(): Promise<AuthUser | null>;
  /** Logs in (or refreshes) when needed; resolves with the user. */
  ensureLogin(): Promise<AuthUser | null>;
  /** A current access token, logging in or refreshing first when needed. */
  getAccessToken(): Promise<string>;
  /** The cached user of the current session, without a request. */
  currentUser(): AuthUser | null;
  /** An HTTP request with the access token; resolves with any HTTP answer (retried once after a 401). */
  request<T = unknown>(options: RequestOptions): Promise<PlatformResponse<T>>;
  /** `wx.uploadFile` with the access token; `data` is the answer's text. */
  uploadFile(options: UploadOptions): Promise<PlatformResponse<string>>;
  /** A login with a fresh `wx.login` code, e.g. from a sign-in button. */
  login(): Promise<AuthUser | null>;
  /**
   * Completes a login with the phone button's event: with the pending `login_ticket`, or (without
   * one, or when the server no longer knows it) a fresh `wx.login` code and the phone code.
   */
  loginWithPhone(detail: PhoneEventDetail): Promise<AuthUser | null>;
  /** `POST /v1/auth/wechat/register`: completes a `phone_required` or `registration_closed` login. */
  register(params: { loginTicket: string; phoneCode: string }): Promise<AuthUser | null>;
  /** Gives up a pending `onLoginRequired` login: the waiting calls fail with `login_cancelled`. */
  cancelLogin(): void;
  /** Ends the session here (and on the server); wins over a login or refresh in flight. */
  logout(options?: { allDevices?: boolean }): Promise<void>;
  /** Binds the phone number from the phone button's event (`code`, or legacy `encryptedData` + `iv`). */
  bindPhone(detail: PhoneEventDetail): Promise<AuthUser>;
  /** Uploads the avatar chosen with `<button open-type="chooseAvatar">` (`wx.uploadFile`, `POST /v1/me/avatar`). */
  uploadAvatar(tempFilePath: string): Promise<AuthUser>;
  /** `PUT /v1/me` (as `PATCH`, which `wx.request` cannot send). */
  updateProfile(profile: { nickname: string | null }): Promise<AuthUser>;
  /** `GET /v1/me`. */
  getProfile(): Promise<AuthUser>;
  /** Before a legacy encrypted-data flow: makes sure the server holds WeChat's current session_key. */
  ensureSessionKey(): Promise<void>;
  /** Subscribes to an event; returns the unsubscribe function. */
  on<K extends keyof AuthEvents>(event: K, listener: (payload: AuthEvents[K]) => void): () => void;
}

interface Session {
  accessToken: string;
  refreshToken: string;
  /** `now()` at which to refresh: the answer's `expires_in` counted from when the call started. */
  refreshAt: number;
  /** `now()` at which the access token expires. */
  expiresAt: number;
  user: AuthUser | null;
}

interface TokenAnswer {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  user?: AuthUser;
}

interface ErrorBody {
  error?: string;
  message?: string;
  request_id?: string;
  login_ticket?: string;
}

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

const LOGIN = '/v1/auth/wechat/login';
const REGISTER = '/v1/auth/wechat/register';
const REFRESH = '/v1/auth/refresh';
const LOGOUT = '/v1/auth/logout';
const JSON_HEADER = { 'content-type': 'application/json' };
/** A login_ticket lives 5 minutes on the server; use it for a little less. */
const TICKET_MS = 270_000;
/** Register failures after which the server keeps the ticket (or may have): the user can try again. */
const KEEPS_TICKET = ['invalid_code', 'phone_in_use', 'wechat_unavailable', 'rate_limited', 'network_error'];

const noop = (): void => undefined;

function deferred<T>(): Deferred<T> {
  const d = {} as Deferred<T>;
  d.promise = new Promise<T>((resolve, reject) => {
    d.resolve = resolve;
    d.reject = reject;
  });
  // The waiters handle the rejection; nobody waiting is not an error.
  d.promise.catch(noop);
  return d;
}

const codeOf = (e: unknown): string | undefined => (e instanceof AuthError ? e.code : undefined);
const fail =
  (code: string) =>
  (e: unknown): never => {
    throw wrapError(e, code);
  };
const loggedOut = (): AuthError => new AuthError('logged_out', 'logged out while this call was waiting');
const denied = (d: PhoneEventDetail | undefined): AuthError =>
  new AuthError('phone_denied', (d && d.errMsg) || 'no phone code: the user declined');

const isString = (v: unknown): v is string => typeof v === 'string';
/** A token as it can go in a header: visible ASCII. */
const isToken = (v: unknown): v is string => isString(v) && /^[\x21-\x7e]+$/.test(v);
const orNull = (v: unknown): boolean => v == null || isString(v);
const optional = (v: unknown, type: string): boolean => v === undefined || typeof v === type;

/** A saved user rebuilt from its fields when each has its type; null for none; undefined when it does not fit. */
function parseUser(u: any): AuthUser | null | undefined {
  if (u === null) return null;
  if (!u || typeof u !== 'object') return undefined;
  const p = u.phone;
  const phone = p == null ? null : isString(p.masked) && isString(p.country_code) ? { masked: p.masked, country_code: p.country_code } : undefined;
  if (!isString(u.id) || !u.id || !orNull(u.nickname) || !orNull(u.avatar_url) || phone === undefined) return undefined;
  if (!optional(u.is_new, 'boolean') || !optional(u.created_at, 'string')) return undefined;
  const user: AuthUser = { id: u.id, nickname: u.nickname ?? null, avatar_url: u.avatar_url ?? null, phone };
  if (u.is_new !== undefined) user.is_new = u.is_new;
  if (u.created_at !== undefined) user.created_at = u.created_at;
  return user;
}

/**
 * The saved session, or null when there is none or any of its fields does not fit: then it is
 * dropped whole and the user logs in again. (Sessions saved before `expiresAt` expire at `refreshAt`.)
 */
function parseSession(text: string | null): Session | null {
  let s: any;
  try {
    s = text && JSON.parse(text);
  } catch {
    return null;
  }
  if (!s || typeof s !== 'object') return null;
  const user = parseUser(s.user);
  const expiresAt = s.expiresAt === undefined ? s.refreshAt : s.expiresAt;
  return user !== undefined && isToken(s.accessToken) && isToken(s.refreshToken) && Number.isFinite(s.refreshAt) && Number.isFinite(expiresAt)
    ? { accessToken: s.accessToken, refreshToken: s.refreshToken, refreshAt: s.refreshAt, expiresAt, user }
    : null;
}

/** A refresh refused with a 4xx other than 408 and 429: this session will never be renewed. */
function sessionOver(e: unknown): boolean {
  const status = e instanceof AuthError ? e.status : undefined;
  return !!status && status >= 400 && status < 500 && status !== 408 && status !== 429;
}

/** `scheme://host[:port]` of an absolute http(s) URL in lower case, without its default port ('' for anything else). */
function originOf(url: string): string {
  const m = /^(https?):\/\/([^/?#]*)/i.exec(url);
  const scheme = m ? m[1].toLowerCase() : '';
  return m ? scheme + '://' + m[2].toLowerCase().replace(scheme === 'https' ? /:443$/ : /:80$/, '') : '';
}

/**
 * The `error` parameter of the Bearer challenge in a `WWW-Authenticate` value (RFC 7235 challenges,
 * RFC 6750 Bearer): schemes and parameter names in any case, values as tokens or quoted strings.
 */
function bearerError(value: string): string | undefined {
  const item = /([\w!#$%&'*+.^`|~-]+)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"?|([\w!#$%&'*+.^`|~-]*)))?/g;
  let scheme = '';
  let m: RegExpExecArray | null;
  while ((m = item.exec(value))) {
    if (m[2] === undefined && m[3] === undefined) scheme = m[1].toLowerCase();
    else if (scheme === 'bearer' && m[1].toLowerCase() === 'error') return m[3] ?? m[2].replace(/\\(.)/g, '$1');
  }
  return undefined;
}

/**
 * Whether a 401 says the access token was refused: `WWW-Authenticate: Bearer error="invalid_token"`.
 * `wx.uploadFile` gives no headers: an upload answer without that header tells it by wxlogin's
 * JSON body `{"error":"invalid_token"}`.
 */
function tokenRefused(res: PlatformResponse, upload: boolean): boolean {
  if (res.statusCode !== 401) return false;
  const header = res.header || {};
  for (const name in header) {
    if (name.toLowerCase() === 'www-authenticate') return bearerError(String(header[name])) === 'invalid_token';
  }
  if (!upload) return false;
  try {
    return (isString(res.data) ? JSON.parse(res.data) : res.data).error === 'invalid_token';
  } catch {
    return false; // not JSON, or no body
  }
}

/** The JSON body of a 2xx answer, or the answer as an AuthError. */
function body<T>(res: PlatformResponse): T {
  let data = res.data;
  if (typeof data === 'string') {
    try {
      data = data ? JSON.parse(data) : undefined;
    } catch {
      // not JSON: keep the text
    }
  }
  if (res.statusCode >= 200 && res.statusCode < 300) return data as T;
  const e = (data && typeof data === 'object' ? data : {}) as ErrorBody;
  throw new AuthError(e.error || 'http_error', e.message || 'HTTP ' + res.statusCode, {
    status: res.statusCode,
    requestId: e.request_id,
    loginTicket: e.login_ticket,
  });
}

export function createAuthClient(options: AuthClientOptions): AuthClient {
  const { platform, appid } = options;
  const now = options.now || Date.now;
  const base = options.baseURL.replace(/\/+$/, '');
  const storageKey = options.storageKey || 'wxlogin.session';
  const leeway = options.refreshLeewayMs ?? 60_000;
  const listeners: Record<string, Array<(payload: unknown) => void>> = {};
  /** The origins that get the access token. */
  const origins = [originOf(base)];
  for (const o of options.authorizedOrigins || []) {
    if (!/^https?:\/\/([\w.-]+|\[[\da-f:.]+\])(:\d+)?$/i.test(o)) throw new TypeError('authorizedOrigins: not an origin: ' + o);
    origins.push(originOf(o));
  }

  let session: Session | null = null;
  /** Bumped by logout: work started before it never installs a session. */
  let epoch = 0;
  /** The one login or refresh in flight, shared by every caller. */
  let renewal: Deferred<Session> | null = null;
  /** The access token the server last answered with a refused 401. */
  let refused: string | null = null;
  /** The login page's outcome while `onLoginRequired` is pending. */
  let prompt: Deferred<Session> | null = null;
  let ticket: { value: string; until: number } | null = null;
  let keyCheck: Promise<void> | null = null;
  let writes: Promise<void> = Promise.resolve();

  const restored: Promise<void> = platform
    .getItem(storageKey)
    .then((text) => {
      session = parseSession(text);
    })
    .catch(noop);

  function emit<K extends keyof AuthEvents>(event: K, payload: AuthEvents[K]): void {
    for (const listener of (listeners[event] || []).slice()) {
      try {
        listener(payload);
      } catch {
        // a listener's failure is its own
      }
    }
  }

  /** Storage writes run in call order, so a logout's removal always lands after an earlier save. */
  function persist(s: Session | null): Promise<void> {
    const text = s && JSON.stringify(s);
    writes = writes
      .then(() => (text ? platform.setItem(storageKey, text) : platform.removeItem(storageKey)))
      .catch(noop);
    return writes;
  }

  const resolveURL = (url: string): string => (/^https?:\/\//i.test(url) ? url : base + url);
  const withToken = (header: Record<string, string> | undefined, token?: string): Record<string, string> =>
    Object.assign({}, header, token ? { Authorization: 'Bearer ' + token } : {});

  const send = (o: RequestOptions, token?: string): Promise<PlatformResponse> =>
    platform
      .request({
        url: resolveURL(o.url),
        method: o.method || 'GET',
        header: withToken(o.header, token),
        data: o.data,
        timeout: o.timeout ?? options.timeout,
      })
      .catch(fail('network_error'));

  /** A POST straight to the server: no token renewal, no retry (login, refresh, logout). */
  const post = <T>(path: string, data: object, token?: string): Promise<T> =>
    send({ url: path, method: 'POST', data, header: JSON_HEADER }, token).then((res) => body<T>(res));

  async function exchange(path: string, data: object): Promise<Session> {
    const start = now();
    const r = await post<TokenAnswer>(path, data);
    const ttl = r.expires_in * 1000;
    return {
      accessToken: r.access_token,
      refreshToken: r.refresh_token,
      refreshAt: start + ttl - Math.min(leeway, ttl / 2),
      expiresAt: start + ttl,
      user: r.user || null,
    };
  }

  const wxLogin = (): Promise<string> => platform.login().catch(fail('login_failed'));

  /** Runs `use` with a fresh wx.login code; an `invalid_code` answer gets one more code, no more. */
  function withFreshCode<T>(use: (code: string) => Promise<T>): Promise<T> {
    const once = (): Promise<T> => wxLogin().then(use);
    return once().catch((e) => {
      if (codeOf(e) === 'invalid_code') return once();
      throw e;
    });
  }

  /** `POST /v1/auth/wechat/login`; keeps the login_ticket of a `phone_required` or `registration_closed` answer. */
  function codeLogin(extra?: object): Promise<Session> {
    return withFreshCode((code) => exchange(LOGIN, Object.assign({ code, appid }, extra))).catch((e) => {
      if (e instanceof AuthError && e.loginTicket) ticket = { value: e.loginTicket, until: now() + TICKET_MS };
      throw e;
    });
  }

  /** Installs a new session unless a logout came first (then revokes it on the server). */
  async function adopt(s: Session, e: number, kind: 'login' | 'refresh'): Promise<Session> {
    if (e !== epoch) {
      post(LOGOUT, { all_devices: false }, s.accessToken).catch(noop);
      throw loggedOut();
    }
    session = s;
    if (kind === 'login') ticket = null;
    await persist(s);
    if (e !== epoch) throw loggedOut();
    emit(kind, s.user);
    return s;
  }

  function closePrompt(outcome: Session | AuthError): void {
    const d = prompt;
    prompt = null;
    if (d) {
      if (outcome instanceof AuthError) d.reject(outcome);
      else d.resolve(outcome);
    }
  }

  /** Hands the login to the app's login page and waits for its outcome. */
  function askForLogin(context: LoginRequiredContext): Promise<Session> {
    const hook = options.onLoginRequired;
    if (!hook) {
      return Promise.reject(context.error || new AuthError('login_required', 'a login page is needed (onLoginRequired)'));
    }
    const d = deferred<Session>();
    prompt = d;
    const cancel = (cause: unknown): void => {
      if (prompt === d) closePrompt(new AuthError('login_cancelled', 'the login page failed', { cause }));
    };
    try {
      Promise.resolve(hook(context)).catch(cancel);
    } catch (err) {
      cancel(err);
    }
    return d.promise;
  }

  async function runRenewal(e: number): Promise<Session> {
    const s = session;
    if (s) {
      try {
        return await adopt(await exchange(REFRESH, { refresh_token: s.refreshToken }), e, 'refresh');
      } catch (err) {
        // No answer, 5xx, 408 or 429: keep the session, fail this attempt.
        if (!sessionOver(err)) throw err;
        // invalid_grant (revoked, expired, reused elsewhere) or another 4xx (a token too large, a
        // proxy's refusal): this session is over; log in afresh.
        if (session === s) {
          session = null;
          persist(null);
          emit('logout', { reason: 'expired' });
        }
      }
    }
    if (options.silentLogin === false) return askForLogin({ reason: 'login_required' });
    try {
      return await adopt(await codeLogin(), e, 'login');
    } catch (err) {
      // phone_required, or registration_closed with a ticket: the login page asks for the phone.
      if (!(err instanceof AuthError) || !err.loginTicket || !options.onLoginRequired) throw err;
      return askForLogin({ reason: err.code as LoginRequiredContext['reason'], loginTicket: err.loginTicket, error: err });
    }
  }

  /** The shared renewal: joins the one in flight or starts one; a failure is not kept. */
  function renew(): Promise<Session> {
    if (!renewal) {
      const d = (renewal = deferred<Session>());
      const settle = (): void => {
        if (renewal === d) renewal = null;
      };
      runRenewal(epoch).then(
        (s) => {
          settle();
          d.resolve(s);
        },
        (err) => {
          settle();
          d.reject(err);
        },
      );
    }
    return renewal.promise;
  }

  /**
   * The session to send with: waits for a renewal in flight, renews shortly before expiry. When
   * that renewal fails but the session stays, its access token is used while it is valid (unless
   * the server has refused it).
   */
  function current(): Promise<Session> {
    const s = session;
    if (!renewal && s && now() < s.refreshAt) return Promise.resolve(s);
    return renew().catch((err) => {
      if (s && s === session && s.accessToken !== refused && now() < s.expiresAt) return s;
      throw err;
    });
  }

  /**
   * Sends with the access token (to baseURL's origin and authorizedOrigins only); a 401 that says
   * the token was refused renews it (shared) and retries once.
   */
  async function withAuth<R extends PlatformResponse>(
    o: { url: string; auth?: boolean },
    upload: boolean,
    go: (token?: string) => Promise<R>,
  ): Promise<R> {
    if (o.auth === false || origins.indexOf(originOf(resolveURL(o.url))) < 0) return go();
    await restored;
    const e = epoch;
    const used = (await current()).accessToken;
    const first = await go(used);
    if (!tokenRefused(first, upload)) return first;
    if (e !== epoch) throw loggedOut();
    // Already replaced by a renewal that finished meanwhile: retry at once with the new token.
    const s = session;
    if (s && s.accessToken === used) refused = used;
    const next = !renewal && s && s.accessToken !== used ? s : await renew();
    return go(next.accessToken);
  }

  const request = <T>(o: RequestOptions): Promise<PlatformResponse<T>> =>
    withAuth(o, false, (token) => send(o, token)) as Promise<PlatformResponse<T>>;

  /** One of wxlogin's own endpoints, through the token handling; a non-2xx answer rejects. */
  const profileCall = (method: string, url: string, data?: unknown): Promise<AuthUser> =>
    request({ url, method, data, header: JSON_HEADER }).then((res) => setUser(body<AuthUser>(res)));

  function setUser(profile: AuthUser): AuthUser {
    if (session) {
      session.user = Object.assign({}, session.user, profile);
      persist(session);
    }
    emit('user', profile);
    return profile;
  }

  async function finish(s: Session, e: number): Promise<AuthUser | null> {
    await adopt(s, e, 'login');
    closePrompt(s);
    return s.user;
  }

  /** `POST /v1/auth/wechat/register`. The kept ticket is set aside meanwhile (single use) and put
   * back after a failure the user can retry (another phone code, another number). */
  async function register(params: { loginTicket: string; phoneCode: string }): Promise<AuthUser | null> {
    await restored;
    const e = epoch;
    const t = ticket && ticket.value === params.loginTicket ? ticket : null;
    if (t) ticket = null;
    try {
      return await finish(await exchange(REGISTER, { login_ticket: params.loginTicket, phone_code: params.phoneCode }), e);
    } catch (err) {
      if (t && !ticket && e === epoch && KEEPS_TICKET.indexOf(codeOf(err) as string) >= 0) ticket = t;
      throw err;
    }
  }

  const upload = (o: UploadOptions): Promise<PlatformResponse<string>> =>
    withAuth(o, true, (token) =>
      platform
        .uploadFile({
          url: resolveURL(o.url),
          filePath: o.filePath,
          name: o.name,
          formData: o.formData,
          header: withToken(o.header, token),
          timeout: o.timeout ?? options.timeout,
        })
        .catch(fail('network_error')),
    ) as Promise<PlatformResponse<string>>;

  async function revoke(s: Session, allDevices: boolean): Promise<void> {
    const out = (token: string): Promise<unknown> => post(LOGOUT, { all_devices: allDevices }, token);
    try {
      await out(s.accessToken);
    } catch (err) {
      if (codeOf(err) !== 'invalid_token') throw err;
      // The access token has expired: a refresh gives one to log out with.
      try {
        await out((await exchange(REFRESH, { refresh_token: s.refreshToken })).accessToken);
      } catch (err2) {
        if (codeOf(err2) !== 'invalid_grant') throw err2;
      }
    }
  }

  return {
    ready: () => restored.then(() => (session ? session.user : null)),
    ensureLogin: () => restored.then(current).then((s) => s.user),
    getAccessToken: () => restored.then(current).then((s) => s.accessToken),
    currentUser: () => (session ? session.user : null),
    request,
    uploadFile: upload,

    async login() {
      await restored;
      const e = epoch;
      return finish(await codeLogin(), e);
    },

    async loginWithPhone(detail) {
      const phoneCode = detail && detail.code;
      if (!phoneCode) throw denied(detail);
      await restored;
      const e = epoch;
      const t = ticket;
      if (t && now() < t.until) {
        try {
          return await register({ loginTicket: t.value, phoneCode });
        } catch (err) {
          if (codeOf(err) !== 'invalid_ticket') throw err;
          // Expired or used: start over once with a fresh code (the phone code was not spent).
        }
      }
      return finish(await codeLogin({ phone_code: phoneCode }), e);
    },

    register,

    cancelLogin: () => closePrompt(new AuthError('login_cancelled', 'the login page was left without logging in')),

    async logout(o) {
      await restored;
      epoch++;
      const s = session;
      const err = loggedOut();
      session = null;
      ticket = null;
      const d = renewal;
      renewal = null;
      if (d) d.reject(err);
      closePrompt(err);
      await persist(null);
      emit('logout', { reason: 'logout' });
      if (s) await revoke(s, !!(o && o.allDevices));
    },

    bindPhone(detail) {
      const d = detail || {};
      const data = d.code ? { code: d.code } : d.encryptedData && d.iv ? { encrypted_data: d.encryptedData, iv: d.iv } : null;
      return data ? profileCall('POST', '/v1/me/phone', data) : Promise.reject(denied(d));
    },

    uploadAvatar: (filePath) =>
      upload({ url: '/v1/me/avatar', filePath, name: 'file' }).then((res) => setUser(body<AuthUser>(res))),

    updateProfile: (profile) => profileCall('PUT', '/v1/me', { nickname: profile.nickname }),
    getProfile: () => profileCall('GET', '/v1/me'),

    ensureSessionKey() {
      if (!keyCheck) {
        const run = restored
          .then(current)
          .then(() => platform.checkSession().catch(() => false))
          .then((valid) =>
            valid ? undefined : withFreshCode((code) => request({ url: '/v1/wechat/session', method: 'POST', data: { code }, header: JSON_HEADER }).then(body)).then(noop),
          );
        const clear = (): void => {
          if (keyCheck === run) keyCheck = null;
        };
        keyCheck = run;
        run.then(clear, clear);
      }
      return keyCheck;
    },

    on(event, listener) {
      const list = (listeners[event] = listeners[event] || []);
      const l = listener as (payload: unknown) => void;
      list.push(l);
      return () => {
        const i = list.indexOf(l);
        if (i >= 0) list.splice(i, 1);
      };
    },
  };
}
