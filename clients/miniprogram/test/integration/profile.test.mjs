// Avatar upload and nickname against the real wxlogin.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { client, startStack } from './harness.mjs';

let stack;
before(async () => {
  stack = await startStack();
});
after(() => stack && stack.stop());

// A 1x1 PNG.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);

test('uploadAvatar: the chosen image is stored and served at avatar_url', async () => {
  const path = join(stack.dir, 'chosen-avatar.png');
  writeFileSync(path, PNG);
  const { auth, count, wx } = client(stack, { user: 'avatar' });
  const changes = [];
  auth.on('user', (u) => changes.push(u.avatar_url));
  const user = await auth.uploadAvatar(path);
  assert.match(user.avatar_url, /\/v1\/avatars\/[0-9a-f]{64}\.png$/);
  assert.deepEqual(changes, [user.avatar_url]);
  // wx.uploadFile, which can only POST: one multipart upload with the access token.
  assert.equal(count('POST', '/v1/me/avatar'), 1);
  assert.equal(wx.calls.filter((c) => c === 'uploadFile').length, 1);
  assert.match(wx.requests.find((r) => r.path === '/v1/me/avatar').auth, /^Bearer /);
  const image = await fetch(user.avatar_url);
  assert.equal(image.status, 200);
  assert.equal(image.headers.get('content-type'), 'image/png');
  assert.deepEqual(Buffer.from(await image.arrayBuffer()), PNG);
  assert.equal((await auth.getProfile()).avatar_url, user.avatar_url);
});

test('uploadAvatar: a file that is not an image is refused with unsupported_media_type', async () => {
  const path = join(stack.dir, 'not-an-image.txt');
  writeFileSync(path, 'hello');
  const { auth } = client(stack, { user: 'avatar-text' });
  const e = await auth.uploadAvatar(path).then(assert.fail, (err) => err);
  assert.equal(e.code, 'unsupported_media_type');
  assert.equal(e.status, 415);
  assert.ok(e.requestId);
});

test('uploadAvatar with an expired access token: one refresh, the upload retried once', async () => {
  const path = join(stack.dir, 'retried-avatar.png');
  writeFileSync(path, PNG);
  const storage = new Map();
  const first = client(stack, { user: 'avatar-retry', storage });
  await first.auth.ensureLogin();
  // The next launch finds a saved session whose access token the server no longer accepts.
  const saved = JSON.parse(storage.get('wxlogin.session'));
  storage.set('wxlogin.session', JSON.stringify({ ...saved, accessToken: 'wxa_not.a.valid.token' }));
  const { auth, count, logins } = client(stack, { user: 'avatar-retry', storage });
  const user = await auth.uploadAvatar(path);
  assert.match(user.avatar_url, /\/v1\/avatars\/[0-9a-f]{64}\.png$/);
  assert.equal(count('POST', '/v1/me/avatar'), 2);
  assert.equal(count('POST', '/v1/auth/refresh'), 1);
  assert.equal(logins(), 0);
});

test('updateProfile: the nickname from <input type="nickname"> with PUT /v1/me', async () => {
  const { auth, count } = client(stack, { user: 'nick' });
  const user = await auth.updateProfile({ nickname: '  小明 ' });
  assert.equal(count('PUT', '/v1/me'), 1);
  assert.equal(count('PATCH', '/v1/me'), 0);
  assert.equal(user.nickname, '小明');
  assert.equal(auth.currentUser().nickname, '小明');
  assert.equal((await auth.getProfile()).nickname, '小明');
  const e = await auth.updateProfile({ nickname: '' }).then(assert.fail, (err) => err);
  assert.equal(e.code, 'invalid_request');
});
