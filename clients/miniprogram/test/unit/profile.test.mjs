// Phone binding, avatar, nickname, uploads and ensureSessionKey.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { flush } from './fake-platform.mjs';
import { REFRESH, assertAuthError, error, json, loggedIn, rejection } from './support.mjs';

test('bindPhone posts the button code and updates the user', async () => {
  const { fake, auth } = await loggedIn();
  const seen = [];
  auth.on('user', (u) => seen.push(u.phone));
  const user = await auth.bindPhone({ errMsg: 'getPhoneNumber:ok', code: 'P1' });
  assert.deepEqual(fake.made('request', '/v1/me/phone').map((c) => c.data), [{ code: 'P1' }]);
  assert.equal(user.phone.masked, '138****8000');
  assert.equal(auth.currentUser().phone.masked, '138****8000');
  assert.deepEqual(seen, [{ masked: '138****8000', country_code: '86' }]);
});

test('bindPhone with legacy encrypted data posts it as is', async () => {
  const { fake, auth } = await loggedIn();
  await auth.bindPhone({ errMsg: 'getPhoneNumber:ok', encryptedData: 'ZW5j', iv: 'aXY=' });
  assert.deepEqual(fake.made('request', '/v1/me/phone')[0].data, { encrypted_data: 'ZW5j', iv: 'aXY=' });
  assert.equal(fake.count('checkSession'), 0);
  assert.equal(fake.count('login'), 1);
});

test('bindPhone without a code sends nothing and rejects with phone_denied', async () => {
  const { fake, auth } = await loggedIn();
  assertAuthError(await rejection(auth.bindPhone({ errMsg: 'getPhoneNumber:fail user deny' })), 'phone_denied');
  assert.equal(fake.count('request', '/v1/me/phone'), 0);
});

test('a server error on bindPhone is an AuthError with its code', async () => {
  const { fake, auth } = await loggedIn();
  fake.server.once('/v1/me/phone', error(409, 'phone_in_use'));
  const e = await rejection(auth.bindPhone({ code: 'P1' }));
  assertAuthError(e, 'phone_in_use');
  assert.equal(e.status, 409);
});

test('uploadAvatar posts the file with uploadFile (field file) and updates the user', async () => {
  const { fake, auth } = await loggedIn();
  const seen = [];
  auth.on('user', (u) => seen.push(u.avatar_url));
  const user = await auth.uploadAvatar('http://tmp/avatar.png');
  assert.deepEqual(
    fake.made('upload').map((c) => [c.url, c.method, c.filePath, c.name, c.header.Authorization]),
    [['https://login.test/v1/me/avatar', 'POST', 'http://tmp/avatar.png', 'file', 'Bearer A1']],
  );
  assert.equal(fake.count('request', '/v1/me/avatar'), 0);
  assert.equal(user.avatar_url, 'https://login.test/v1/avatars/x.png');
  assert.equal(auth.currentUser().avatar_url, user.avatar_url);
  assert.deepEqual(seen, [user.avatar_url]);
});

test('uploadAvatar after the access token expired: one refresh, one retry with the new token', async () => {
  const { fake, auth } = await loggedIn();
  fake.server.expireAccessTokens();
  fake.pause('request', REFRESH);
  const both = Promise.all([auth.uploadAvatar('http://tmp/a.png'), auth.uploadAvatar('http://tmp/b.png')]);
  (await fake.next('request', REFRESH)).release();
  fake.resume('request', REFRESH);
  for (const user of await both) assert.equal(user.avatar_url, 'https://login.test/v1/avatars/x.png');
  assert.equal(fake.count('request', REFRESH), 1);
  assert.deepEqual(fake.made('upload').map((c) => [c.filePath, c.token]), [
    ['http://tmp/a.png', 'A1'],
    ['http://tmp/b.png', 'A1'],
    ['http://tmp/a.png', 'A2'],
    ['http://tmp/b.png', 'A2'],
  ]);
});

test('uploadAvatar is retried at most once: a second 401 is reported', async () => {
  const { fake, auth } = await loggedIn();
  fake.server.once('/v1/me/avatar', error(401, 'invalid_token'));
  fake.server.once('/v1/me/avatar', error(401, 'invalid_token'));
  const e = await rejection(auth.uploadAvatar('http://tmp/a.png'));
  assertAuthError(e, 'invalid_token');
  assert.equal(e.status, 401);
  assert.equal(fake.count('upload'), 2);
  assert.equal(fake.count('request', REFRESH), 1);
});

test('uploadAvatar: an error answer (text, as uploadFile gives it) is an AuthError with its code', async () => {
  const { fake, auth } = await loggedIn();
  fake.server.once('/v1/me/avatar', error(415, 'unsupported_media_type'));
  const e = await rejection(auth.uploadAvatar('http://tmp/a.txt'));
  assertAuthError(e, 'unsupported_media_type');
  assert.equal(e.status, 415);
  assert.equal(e.requestId, 'req-test');
});

test('uploadAvatar: a failed upload (no answer) rejects with network_error', async () => {
  const { fake, auth } = await loggedIn();
  fake.pause('upload');
  const pending = rejection(auth.uploadAvatar('http://tmp/gone.png'));
  (await fake.next('upload')).fail('uploadFile:fail file not found');
  const e = await pending;
  assertAuthError(e, 'network_error');
  assert.equal(e.message, 'uploadFile:fail file not found');
});

test('updateProfile and getProfile', async () => {
  const { fake, auth } = await loggedIn();
  assert.equal((await auth.updateProfile({ nickname: '小明' })).nickname, '小明');
  assert.deepEqual(fake.made('request', '/v1/me').map((c) => [c.method, c.data]), [['PUT', { nickname: '小明' }]]);
  assert.equal((await auth.getProfile()).created_at, '2024-01-01T00:00:00Z');
  assert.equal(auth.currentUser().nickname, '小明');
});

test('uploadFile carries the token and is retried once after a 401', async () => {
  const { fake, auth } = await loggedIn();
  fake.server.expireAccessTokens();
  const answer = await auth.uploadFile({ url: '/api/upload', filePath: 'http://tmp/a.jpg', name: 'photo', formData: { kind: 'a' } });
  assert.equal(answer.statusCode, 200);
  assert.equal(JSON.parse(answer.data).token, 'A2');
  assert.deepEqual(fake.made('upload').map((c) => [c.token, c.name, c.formData.kind]), [
    ['A1', 'photo', 'a'],
    ['A2', 'photo', 'a'],
  ]);
});

test('uploadFile: without response headers, only wxlogin\'s invalid_token body renews; a business 401 is returned as is', async () => {
  const { fake, auth } = await loggedIn();
  fake.server.once('/api/upload', json(401, { error: 'quota_exceeded' }));
  const answer = await auth.uploadFile({ url: '/api/upload', filePath: 'http://tmp/a.jpg', name: 'photo' });
  assert.equal(answer.statusCode, 401);
  assert.equal(JSON.parse(answer.data).error, 'quota_exceeded');
  assert.equal(fake.count('upload'), 1);
  assert.equal(fake.count('request', REFRESH), 0);
});

test('ensureSessionKey: a current session only costs one wx.checkSession', async () => {
  const { fake, auth } = await loggedIn();
  await Promise.all([auth.ensureSessionKey(), auth.ensureSessionKey()]);
  assert.equal(fake.count('checkSession'), 1);
  assert.equal(fake.count('login'), 1);
  assert.equal(fake.count('request', '/v1/wechat/session'), 0);
});

test('ensureSessionKey: an expired session gets one fresh code posted to /v1/wechat/session', async () => {
  const { fake, auth } = await loggedIn();
  fake.sessionValid = false;
  fake.pause('checkSession');
  const both = Promise.all([auth.ensureSessionKey(), auth.ensureSessionKey()]);
  const check = await fake.next('checkSession');
  await flush();
  assert.equal(fake.count('checkSession'), 1);
  fake.resume('checkSession');
  check.release();
  await both;
  assert.equal(fake.count('login'), 2);
  assert.deepEqual(fake.made('request', '/v1/wechat/session').map((c) => [c.token, c.data]), [['A1', { code: 'C2' }]]);
  // Not kept: a later call checks again.
  fake.sessionValid = true;
  await auth.ensureSessionKey();
  assert.equal(fake.count('checkSession'), 2);
});

test('ensureSessionKey: an identity_mismatch is reported', async () => {
  const { fake, auth } = await loggedIn();
  fake.sessionValid = false;
  fake.server.once('/v1/wechat/session', error(409, 'identity_mismatch'));
  assertAuthError(await rejection(auth.ensureSessionKey()), 'identity_mismatch');
});

test('events: login, refresh, logout and unsubscribe', async () => {
  const { fake, auth, clock } = await loggedIn();
  const seen = [];
  const off = auth.on('refresh', (u) => seen.push(['refresh', u.id]));
  auth.on('login', (u) => seen.push(['login', u.id]));
  auth.on('logout', (e) => seen.push(['logout', e.reason]));
  auth.on('login', () => {
    throw new Error('a broken listener does not break the client');
  });
  clock.advance(900_000);
  await auth.getAccessToken();
  off();
  clock.advance(900_000);
  await auth.getAccessToken();
  await auth.logout();
  await auth.login();
  assert.deepEqual(seen, [
    ['refresh', 'u_1'],
    ['logout', 'logout'],
    ['login', 'u_1'],
  ]);
  assert.equal(fake.count('login'), 2);
});

test('a full URL is used as is (without the token on another origin); a path is resolved on baseURL without a double slash', async () => {
  const { fake, auth } = await loggedIn({ baseURL: 'https://login.test/' });
  await auth.request({ url: 'https://api.example.com/orders', method: 'POST', data: { n: 1 } });
  await auth.request({ url: '/api/y' });
  assert.deepEqual(
    fake.made('request').slice(-2).map((c) => [c.url, c.method, c.token]),
    [
      ['https://api.example.com/orders', 'POST', undefined],
      ['https://login.test/api/y', 'GET', 'A1'],
    ],
  );
});
