// The client against the real wxlogin and the WeChat simulator: cold-start storm, restore on the
// next launch, refresh-token reuse, a refresh answered 413, a malformed saved session, where the
// token goes, logout (this device and all devices), ensureSessionKey.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { client, getWith, savedSession, startStack } from './harness.mjs';

let stack;
before(async () => {
  // No refresh grace: presenting a rotated refresh token again is reuse at once.
  stack = await startStack({ tokens: { refresh_grace_secs: 0 } });
});
after(() => stack && stack.stop());

const LOGIN = '/v1/auth/wechat/login';
const REFRESH = '/v1/auth/refresh';

test('cold-start storm: 20 concurrent requests, one wx.login, one login POST, one jscode2session', async () => {
  const { auth, wx, count, logins } = client(stack, { user: 'storm' });
  const before = (await stack.stats()).jscode2session || 0;
  const answers = await Promise.all(Array.from({ length: 20 }, () => auth.request({ url: '/v1/me' })));
  const ids = new Set(answers.map((a) => a.data.id));
  for (const a of answers) assert.equal(a.statusCode, 200);
  assert.equal(ids.size, 1);
  assert.equal(logins(), 1);
  assert.equal(count('POST', LOGIN), 1);
  assert.equal(count('GET', '/v1/me'), 20);
  assert.equal((await stack.stats()).jscode2session - before, 1);
  assert.equal(wx.calls.includes('checkSession'), false);
});

test('the next launch restores the saved tokens without wx.login', async () => {
  const first = client(stack, { user: 'restore' });
  const user = await first.auth.ensureLogin();
  assert.equal(user.is_new, true);
  const next = client(stack, { user: 'restore', storage: first.wx.storage });
  assert.equal((await next.auth.ready()).id, user.id);
  const me = await next.auth.request({ url: '/v1/me' });
  assert.equal(me.statusCode, 200);
  assert.equal(me.data.id, user.id);
  assert.equal(next.logins(), 0);
  assert.doesNotMatch(JSON.stringify([...first.wx.storage.values()]), /session_key/);
});

test('refresh-token reuse revokes the session; the client logs in again with one wx.login', async () => {
  let t = 0;
  const { auth, wx, count, logins } = client(stack, { user: 'reuse', now: () => t });
  const reasons = [];
  auth.on('logout', (e) => reasons.push(e.reason));
  const user = await auth.ensureLogin();
  const stolen = savedSession(wx.storage).refreshToken;

  t += 15 * 60_000; // the device clock says the token is due: the client refreshes
  assert.equal((await auth.request({ url: '/v1/me' })).statusCode, 200);
  assert.equal(count('POST', REFRESH), 1);
  const rotated = savedSession(wx.storage);
  assert.notEqual(rotated.refreshToken, stolen);

  // Someone presents the rotated-away refresh token: reuse, the whole session is revoked.
  const reuse = await fetch(stack.serverURL + REFRESH, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refresh_token: stolen }),
  });
  assert.equal(reuse.status, 401);
  assert.equal((await reuse.json()).error, 'invalid_grant');
  assert.equal((await getWith(stack, '/v1/me', rotated.accessToken)).status, 401);

  // The client's next call: 401, its refresh is refused, one silent wx.login, the call succeeds.
  const me = await auth.request({ url: '/v1/me' });
  assert.equal(me.statusCode, 200);
  assert.equal(me.data.id, user.id);
  assert.equal(count('POST', REFRESH), 2);
  assert.equal(logins(), 2);
  assert.deepEqual(reasons, ['expired']);
  assert.notEqual(savedSession(wx.storage).refreshToken, rotated.refreshToken);
});

test('a refresh the server answers 413 (an oversized saved token) drops the session: one silent wx.login', async () => {
  let t = 0;
  const first = client(stack, { user: 'oversized', now: () => t });
  const user = await first.auth.ensureLogin();
  // A saved refresh token larger than the server's body limit (64 KiB), due for a refresh.
  const saved = savedSession(first.wx.storage);
  first.wx.storage.set('wxlogin.session', JSON.stringify({ ...saved, refreshToken: 'wxr_' + 'A'.repeat(70_000), refreshAt: 0 }));
  const { auth, wx, count, logins } = client(stack, { user: 'oversized', storage: first.wx.storage, now: () => t });
  const reasons = [];
  auth.on('logout', (e) => reasons.push(e.reason));
  const me = await auth.request({ url: '/v1/me' });
  assert.equal(me.statusCode, 200);
  assert.equal(me.data.id, user.id);
  assert.equal(count('POST', REFRESH), 1);
  assert.equal(logins(), 1);
  assert.deepEqual(reasons, ['expired']);
  assert.ok(savedSession(wx.storage).refreshToken.length < 100);
  // And the next call is an ordinary one: no refresh, no login.
  assert.equal((await auth.request({ url: '/v1/me' })).statusCode, 200);
  assert.equal(count('POST', REFRESH), 1);
  assert.equal(logins(), 1);
});

test('a saved session whose user is not an object is dropped: ready() is null, the next call logs in', async () => {
  const first = client(stack, { user: 'mallory' });
  const user = await first.auth.ensureLogin();
  first.wx.storage.set('wxlogin.session', JSON.stringify({ ...savedSession(first.wx.storage), user: 'mallory' }));
  const { auth, logins } = client(stack, { user: 'mallory', storage: first.wx.storage });
  assert.equal(await auth.ready(), null);
  const profile = await auth.updateProfile({ nickname: 'M' });
  assert.equal(profile.id, user.id);
  assert.equal(logins(), 1);
  assert.equal(auth.currentUser().id, user.id);
  assert.equal(auth.currentUser()[0], undefined);
});

test('the token goes to baseURL and authorizedOrigins only', async () => {
  const stats = `${stack.mockURL}/__mock/stats`;
  const plain = client(stack, { user: 'origins' });
  await plain.auth.ensureLogin();
  assert.equal((await plain.auth.request({ url: stats })).statusCode, 200);
  assert.equal((await plain.auth.request({ url: '/v1/me' })).statusCode, 200);
  assert.deepEqual(plain.wx.requests.filter((r) => r.method === 'GET').map((r) => [r.path, !!r.auth]), [
    [stats, false],
    ['/v1/me', true],
  ]);
  const allowed = client(stack, { user: 'origins', authorizedOrigins: [stack.mockURL] });
  await allowed.auth.request({ url: stats });
  assert.match(allowed.wx.requests.find((r) => r.path === stats).auth, /^Bearer /);
});

test('logout revokes the tokens on the server and clears the storage', async () => {
  const { auth, wx, count, logins } = client(stack, { user: 'leaver' });
  await auth.ensureLogin();
  const saved = savedSession(wx.storage);
  await auth.logout();
  assert.equal(count('POST', '/v1/auth/logout'), 1);
  assert.equal(wx.storage.size, 0);
  assert.equal(auth.currentUser(), null);
  const me = await getWith(stack, '/v1/me', saved.accessToken);
  assert.equal(me.status, 401);
  assert.equal(me.body.error, 'invalid_token');
  const refresh = await fetch(stack.serverURL + REFRESH, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refresh_token: saved.refreshToken }),
  });
  assert.equal(refresh.status, 401);
  // The next call logs in afresh.
  assert.equal((await auth.request({ url: '/v1/me' })).statusCode, 200);
  assert.equal(logins(), 2);
});

test('logout on all devices: the other device logs in again silently on its next call', async () => {
  const phone = client(stack, { user: 'two-devices' });
  const tablet = client(stack, { user: 'two-devices' });
  const user = await phone.auth.ensureLogin();
  assert.equal((await tablet.auth.ensureLogin()).id, user.id);
  await phone.auth.logout({ allDevices: true });
  const me = await tablet.auth.request({ url: '/v1/me' });
  assert.equal(me.statusCode, 200);
  assert.equal(me.data.id, user.id);
  assert.equal(tablet.count('POST', REFRESH), 1); // refused: the session is gone
  assert.equal(tablet.logins(), 2);
});

test('ensureSessionKey before legacy encrypted data: checkSession, then a fresh code when it failed', async () => {
  const appid = 'wx0000000000000001';
  const { auth, wx, count, logins } = client(stack, { user: 'legacy' });
  await auth.ensureLogin();
  await auth.ensureSessionKey();
  assert.equal(count('POST', '/v1/wechat/session'), 0);
  wx.sessionValid = false;
  await auth.ensureSessionKey();
  assert.equal(count('POST', '/v1/wechat/session'), 1);
  assert.equal(logins(), 2);
  assert.equal(wx.calls.filter((c) => c === 'checkSession').length, 2);

  // The data WeChat hands the mini program, sealed with the user's current session_key.
  const sealed = await stack.mockPost('/__mock/encrypt', { appid, user: 'legacy', data: { stepInfoList: [] } });
  const answer = await auth.request({ url: '/v1/wechat/decrypt', method: 'POST', data: sealed });
  assert.equal(answer.statusCode, 200);
  assert.deepEqual(answer.data.data, { stepInfoList: [] });
  assert.equal(answer.data.watermark.appid, appid);
});
