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

/** A session as the client saves it, with `fields` changed. */
const stored = (fields) =>
  JSON.stringify({
    accessToken: 'A9',
    refreshToken: 'R9',
    refreshAt: 2_000_000,
    expiresAt: 2_060_000,
    user: { id: 'u_9', nickname: null, avatar_url: null, phone: null },
    ...fields,
  });

test('a stored session with a field that does not fit is dropped whole: the user logs in again', async () => {
  const user = { id: 'u_9', nickname: null, avatar_url: null, phone: null };
  const malformed = {
    'user is a string': { user: 'mallory' },
    'user is an array': { user: ['u_9'] },
    'user without an id': { user: { ...user, id: undefined } },
    'user id not a string': { user: { ...user, id: 9 } },
    'nickname not a string': { user: { ...user, nickname: { first: 'x' } } },
    'avatar_url not a string': { user: { ...user, avatar_url: 1 } },
    'phone is a string': { user: { ...user, phone: '13800138000' } },
    'phone without masked': { user: { ...user, phone: { country_code: '86' } } },
    'is_new not a boolean': { user: { ...user, is_new: 'yes' } },
    'created_at not a string': { user: { ...user, created_at: 1 } },
    'empty access token': { accessToken: '' },
    'access token with a line break': { accessToken: 'A9\r\nX-Evil: 1' },
    'refresh token not a string': { refreshToken: 9 },
    'refreshAt a string': { refreshAt: '2000000' },
    'refreshAt not finite': { refreshAt: null },
    'expiresAt a string': { expiresAt: 'later' },
  };
  for (const [name, fields] of Object.entries(malformed)) {
    const platform = new FakePlatform();
    platform.storage.set(KEY, stored(fields));
    const { auth } = setup({}, platform);
    assert.equal(await auth.ready(), null, name);
    assert.equal(auth.currentUser(), null, name);
    assert.equal((await auth.request({ url: '/api/x' })).data.token, 'A1', name);
    assert.equal(platform.count('login'), 1, name);
    assert.equal(auth.currentUser().id, 'u_1', name);
    assert.equal(JSON.parse(platform.storage.get(KEY)).accessToken, 'A1', name);
  }
});

test('a stored user that is not an object never reaches the profile', async () => {
  const platform = new FakePlatform();
  platform.storage.set(KEY, stored({ user: 'mallory' }));
  platform.server.access.add('A9');
  const { auth } = setup({}, platform);
  await auth.ready();
  const profile = await auth.updateProfile({ nickname: 'm' });
  assert.equal(profile.nickname, 'm');
  assert.deepEqual(Object.keys(auth.currentUser()).sort(), ['avatar_url', 'created_at', 'id', 'is_new', 'nickname', 'phone']);
});

test('a well-formed stored session is restored with exactly its known fields', async () => {
  const phone = { masked: '138****8000', country_code: '86' };
  const user = { id: 'u_9', nickname: '小明', avatar_url: 'https://login.test/v1/avatars/a.png', phone, is_new: false, created_at: '2024-01-01T00:00:00Z' };
  for (const fields of [{ user }, { user: { ...user, role: 'admin' } }, { user: null }, { user, expiresAt: undefined }]) {
    const platform = new FakePlatform();
    platform.storage.set(KEY, stored(fields));
    const { auth } = setup({}, platform);
    assert.deepEqual(await auth.ready(), fields.user === null ? null : user);
    platform.server.access.add('A9');
    assert.equal((await auth.request({ url: '/api/x' })).data.token, 'A9');
    assert.equal(platform.count('login'), 0);
  }
});
