// Tokens persisted in storage and restored on the next launch, with storage calls held in flight.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FakePlatform, flush } from './fake-platform.mjs';
import { LOGIN, assertAuthError, loggedIn, rejection, setup } from './support.mjs';

const KEY = 'wxlogin.session';

test('tokens are saved and the next launch uses them without wx.login', async () => {
  const { fake } = await loggedIn();
  const saved = JSON.parse(fake.storage.get(KEY));
  assert.equal(saved.accessToken, 'A1');
  assert.equal(saved.refreshToken, 'R1');
  assert.equal(saved.user.id, 'u_1');
  assert.ok(!/session_key/i.test(fake.storage.get(KEY)));

  const next = new FakePlatform({ storage: fake.storage, server: fake.server });
  const { auth } = setup({}, next);
  assert.equal((await auth.ready()).id, 'u_1');
  assert.equal((await auth.request({ url: '/api/x' })).data.token, 'A1');
  assert.equal(next.count('login'), 0);
});

test('requests made before the saved session is read wait for it', async () => {
  const { fake } = await loggedIn();
  const next = new FakePlatform({ storage: fake.storage, server: fake.server });
  next.pause('getItem');
  const { auth } = setup({}, next);
  const answer = auth.request({ url: '/api/x' });
  const read = await next.next('getItem');
  await flush();
  assert.equal(next.count('request'), 0);
  read.release();
  assert.equal((await answer).data.token, 'A1');
  assert.equal(next.count('login'), 0);
});

test('a logout before the saved session is read does not bring it back', async () => {
  const { fake } = await loggedIn();
  const next = new FakePlatform({ storage: fake.storage, server: fake.server });
  next.pause('getItem');
  const { auth } = setup({}, next);
  const out = auth.logout();
  (await next.next('getItem')).release();
  await out;
  assert.equal(auth.currentUser(), null);
  assert.equal(next.storage.size, 0);
  assert.deepEqual(next.made('request').map((c) => [c.path, c.token]), [['/v1/auth/logout', 'A1']]);
});

test('a logout while the new session is being saved leaves the storage empty', async () => {
  const { fake, auth } = setup();
  fake.pause('setItem');
  const login = rejection(auth.ensureLogin());
  const save = await fake.next('setItem');
  const out = auth.logout();
  await flush();
  fake.resume('setItem');
  save.release();
  await out;
  assertAuthError(await login, 'logged_out');
  assert.equal(fake.storage.size, 0);
  assert.deepEqual(fake.made('removeItem').length, 1);
});

test('unreadable or foreign storage content is ignored', async () => {
  const platform = new FakePlatform();
  platform.storage.set(KEY, '{not json');
  const { auth } = setup({}, platform);
  assert.equal(await auth.ready(), null);
  assert.equal(await auth.getAccessToken(), 'A1');
  assert.equal(platform.count('request', LOGIN), 1);
});

test('a failing storage does not fail the login', async () => {
  const platform = new FakePlatform();
  platform.pause('getItem');
  platform.pause('setItem');
  const { auth } = setup({}, platform);
  const token = auth.getAccessToken();
  (await platform.next('getItem')).fail('getStorageSync:fail');
  (await platform.next('setItem')).fail('setStorageSync:fail exceed storage max size');
  assert.equal(await token, 'A1');
});

test('a custom storage key', async () => {
  const { fake } = await loggedIn({ storageKey: 'app.auth' });
  assert.deepEqual([...fake.storage.keys()], ['app.auth']);
});
