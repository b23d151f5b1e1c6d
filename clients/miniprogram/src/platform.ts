/** An HTTP request as the client hands it to the platform. */
export interface PlatformRequest {
  url: string;
  method: string;
  header: Record<string, string>;
  /** An object (sent as JSON), a string, an ArrayBuffer, or nothing. */
  data?: unknown;
  timeout?: number;
}

/** `wx.uploadFile`'s parameters (always a multipart POST). */
export interface PlatformUpload {
  url: string;
  filePath: string;
  name: string;
  header: Record<string, string>;
  formData?: Record<string, string>;
  timeout?: number;
}

/** Any HTTP answer, whatever its status. */
export interface PlatformResponse<T = unknown> {
  statusCode: number;
  data: T;
  header: Record<string, string>;
}

/**
 * What the client needs from the mini program runtime, promise-based. `wxPlatform`, `taroPlatform`
 * and `uniPlatform` build one; tests can implement it directly. A call rejects when the runtime
 * calls `fail` (a network error, not an HTTP error status).
 */
export interface Platform {
  /** `wx.login`: a fresh login code. */
  login(): Promise<string>;
  request(options: PlatformRequest): Promise<PlatformResponse>;
  uploadFile(options: PlatformUpload): Promise<PlatformResponse>;
  /** `wx.checkSession`: whether WeChat still considers this user's session_key current. */
  checkSession(): Promise<boolean>;
  getItem(key: string): Promise<string | null>;
  setItem(key: string, value: string): Promise<void>;
  removeItem(key: string): Promise<void>;
}

/**
 * The part of `wx`, `Taro` or `uni` the adapters use, called with callbacks only
 * (`login({ success, fail })`, `request(...)`, `uploadFile(...)`, `checkSession(...)`,
 * `get/set/removeStorageSync`).
 */
export type MiniProgramApi = any;

interface HttpResult {
  statusCode: number;
  data: unknown;
  header?: Record<string, string>;
}

/** Calls `target[name]({ ...args, success, fail })` and settles with the callback's argument. */
function call<T>(target: MiniProgramApi, name: string, args: object): Promise<T> {
  return new Promise<T>((success, fail) => {
    target[name](Object.assign({}, args, { success, fail }));
  });
}

const response = (r: HttpResult): PlatformResponse => ({
  statusCode: r.statusCode,
  data: r.data,
  header: r.header || {},
});

function adapt(api: MiniProgramApi, loginArgs: object): Platform {
  const sync = <T>(run: () => T): Promise<T> => Promise.resolve().then(run);
  return {
    login: () => call<{ code: string }>(api, 'login', loginArgs).then((r) => r.code),
    request: (o) => call<HttpResult>(api, 'request', o).then(response),
    uploadFile: (o) => call<HttpResult>(api, 'uploadFile', o).then(response),
    checkSession: () => call(api, 'checkSession', {}).then(() => true, () => false),
    getItem: (key) =>
      sync(() => api.getStorageSync(key)).then((v) => (typeof v === 'string' && v ? v : null)),
    setItem: (key, value) => sync(() => void api.setStorageSync(key, value)),
    removeItem: (key) => sync(() => void api.removeStorageSync(key)),
  };
}

/** The platform of a native WeChat mini program: `wxPlatform(wx)`. */
export const wxPlatform = (wx: MiniProgramApi): Platform => adapt(wx, {});

/** Taro (compiled for WeChat): `taroPlatform(Taro)` with `import Taro from '@tarojs/taro'`. */
export const taroPlatform = (taro: MiniProgramApi): Platform => adapt(taro, {});

/** uni-app (compiled for mp-weixin): `uniPlatform(uni)`; logs in with `provider: 'weixin'`. */
export const uniPlatform = (uni: MiniProgramApi): Platform => adapt(uni, { provider: 'weixin' });
