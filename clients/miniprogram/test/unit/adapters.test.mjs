// wxPlatform, taroPlatform and uniPlatform map callback-style APIs to the Platform promises.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AuthError, createAuthClient, taroPlatform, uniPlatform, wxPlatform } from '../../dist/index.mjs';

/** A callback-style runtime like wx: records each call's options, answers with `replies[name]`. */
function fakeApi(replies = {}) {
  const calls = [];
  const storage = new Map();
  const api = { calls, storage };
  for (const name of ['login', 'request', 'uploadFile', 'checkSession']) {
    api[name] = (options) => {
      calls.push([name, options]);
      const reply = replies[name];
      if (reply && reply.fail) options.fail(reply.fail);
      else options.success(reply ? reply.success : {});
    };
  }
  api.getStorageSync = (key) => (storage.has(key) ? storage.get(key) : '');
  api.setStorageSync = (key, value) => void storage.set(key, value);
  api.removeStorageSync = (key) => void storage.delete(key);
  return api;
}

test('wxPlatform: login, request, uploadFile, checkSession and storage', async () => {
  const wx = fakeApi({
    login: { success: { code: 'C1', errMsg: 'login:ok' } },
    request: { success: { statusCode: 201, data: { a: 1 }, header: { 'x-request-id': 'r' } } },
    uploadFile: { success: { statusCode: 200, data: '{"b":2}' } },
    checkSession: { fail: { errMsg: 'checkSession:fail session time out' } },
  });
  const p = wxPlatform(wx);
  assert.equal(await p.login(), 'C1');
  assert.deepEqual(wx.calls[0][1].provider, undefined);
  const options = { url: 'https://x/y', method: 'POST', header: { a: 'b' }, data: { c: 1 }, timeout: 5000 };
  assert.deepEqual(await p.request(options), { statusCode: 201, data: { a: 1 }, header: { 'x-request-id': 'r' } });
  const [, sent] = wx.calls[1];
  assert.deepEqual({ url: sent.url, method: sent.method, header: sent.header, data: sent.data, timeout: sent.timeout }, options);
  const upload = { url: 'https://x/u', filePath: 'f', name: 'file', header: { c: 'd' }, formData: { e: 'f' } };
  assert.deepEqual(await p.uploadFile(upload), { statusCode: 200, data: '{"b":2}', header: {} });
  const [, uploaded] = wx.calls[2];
  assert.deepEqual(
    { url: uploaded.url, filePath: uploaded.filePath, name: uploaded.name, header: uploaded.header, formData: uploaded.formData },
    upload,
  );
  assert.equal(await p.checkSession(), false);
  assert.equal(await p.getItem('k'), null);
  await p.setItem('k', 'v');
  assert.equal(await p.getItem('k'), 'v');
  await p.removeItem('k');
  assert.equal(wx.storage.size, 0);
});

test('wxPlatform: a fail callback rejects with its result', async () => {
  const wx = fakeApi({ request: { fail: { errMsg: 'request:fail timeout' } }, login: { fail: { errMsg: 'login:fail' } } });
  const p = wxPlatform(wx);
  await assert.rejects(p.request({ url: 'u', method: 'GET', header: {} }), { errMsg: 'request:fail timeout' });
  await assert.rejects(p.login(), { errMsg: 'login:fail' });
});

test('wxPlatform: a throwing storage rejects instead of throwing', async () => {
  const wx = fakeApi();
  wx.setStorageSync = () => {
    throw new Error('exceed storage max size');
  };
  await assert.rejects(wxPlatform(wx).setItem('k', 'v'), /exceed storage max size/);
});

test('uniPlatform logs in with provider weixin; taroPlatform like wx', async () => {
  const uni = fakeApi({ login: { success: { code: 'U1' } } });
  assert.equal(await uniPlatform(uni).login(), 'U1');
  assert.equal(uni.calls[0][1].provider, 'weixin');
  const taro = fakeApi({ login: { success: { code: 'T1' } } });
  assert.equal(await taroPlatform(taro).login(), 'T1');
  assert.equal(taro.calls[0][1].provider, undefined);
});

test('a client on wxPlatform: network failures become AuthError network_error', async () => {
  const wx = fakeApi({
    login: { success: { code: 'C1' } },
    request: { fail: { errMsg: 'request:fail url not in domain list' } },
  });
  const auth = createAuthClient({ baseURL: 'https://login.test', platform: wxPlatform(wx) });
  const e = await auth.ensureLogin().catch((err) => err);
  assert.ok(e instanceof AuthError);
  assert.equal(e.code, 'network_error');
  assert.equal(e.message, 'request:fail url not in domain list');
  assert.deepEqual(e.cause, { errMsg: 'request:fail url not in domain list' });
});

test('a client on wxPlatform: a JSON error answer given as text is still read', async () => {
  const wx = fakeApi({
    login: { success: { code: 'C1' } },
    request: { success: { statusCode: 503, data: '{"error":"wechat_unavailable","message":"busy","request_id":"r1"}' } },
  });
  const auth = createAuthClient({ baseURL: 'https://login.test', platform: wxPlatform(wx) });
  const e = await auth.ensureLogin().catch((err) => err);
  assert.equal(e.code, 'wechat_unavailable');
  assert.equal(e.requestId, 'r1');
  assert.equal(e.name, 'AuthError');
});

test('a client on wxPlatform: a non-JSON error answer is http_error', async () => {
  const wx = fakeApi({
    login: { success: { code: 'C1' } },
    request: { success: { statusCode: 502, data: '<html>Bad Gateway</html>' } },
  });
  const auth = createAuthClient({ baseURL: 'https://login.test', platform: wxPlatform(wx) });
  const e = await auth.ensureLogin().catch((err) => err);
  assert.equal(e.code, 'http_error');
  assert.equal(e.status, 502);
});
