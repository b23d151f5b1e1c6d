// phone_required and explicit sign-in pages: onLoginRequired, loginWithPhone, register, cancelLogin.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { flush } from './fake-platform.mjs';
import { LOGIN, REGISTER, assertAuthError, error, rejection, setup } from './support.mjs';

const phoneRequired = (ticket = 'T1') => error(403, 'phone_required', { login_ticket: ticket });
const requests = (auth, n) => Array.from({ length: n }, (_, i) => auth.request({ url: `/api/items/${i}` }));

function withPage(options = {}) {
  const contexts = [];
  const t = setup({ onLoginRequired: (context) => void contexts.push(context), ...options });
  return { ...t, contexts };
}

test('phone_required: the hook is called once, the waiters resume after loginWithPhone with the ticket', async () => {
  const { fake, auth, contexts } = withPage();
  fake.server.once(LOGIN, phoneRequired());
  const waiting = requests(auth, 3);
  await flush();
  assert.equal(contexts.length, 1);
  assert.equal(contexts[0].reason, 'phone_required');
  assert.equal(contexts[0].loginTicket, 'T1');
  assertAuthError(contexts[0].error, 'phone_required');
  assert.equal(fake.made('request').filter((c) => c.path.startsWith('/api/')).length, 0);

  const user = await auth.loginWithPhone({ errMsg: 'getPhoneNumber:ok', code: 'P1' });
  assert.equal(user.id, 'u_1');
  assert.deepEqual(fake.made('request', REGISTER).map((c) => c.data), [{ login_ticket: 'T1', phone_code: 'P1' }]);
  for (const a of await Promise.all(waiting)) assert.equal(a.data.token, 'A1');
  assert.equal(fake.count('login'), 1); // the ticket spared a second wx.login
  assert.equal(contexts.length, 1);
});

test('phone_required: backing out fails every waiter with one login_cancelled, and is not kept', async () => {
  const { fake, auth, contexts } = withPage();
  fake.server.once(LOGIN, phoneRequired());
  const waiting = requests(auth, 3).map(rejection);
  await flush();
  auth.cancelLogin();
  const errors = await Promise.all(waiting);
  assertAuthError(errors[0], 'login_cancelled');
  for (const e of errors) assert.equal(e, errors[0]);

  // The next call starts over: wx.login, and this time the server lets the user in.
  assert.equal((await auth.request({ url: '/api/x' })).data.token, 'A1');
  assert.equal(fake.count('login'), 2);
  assert.equal(contexts.length, 1);
});

test('phone_required: a hook that rejects fails the waiters with login_cancelled and its cause', async () => {
  const cause = new Error('navigateTo:fail page not found');
  const { fake, auth } = setup({ onLoginRequired: () => Promise.reject(cause) });
  fake.server.once(LOGIN, phoneRequired());
  const e = await rejection(auth.request({ url: '/api/x' }));
  assertAuthError(e, 'login_cancelled');
  assert.equal(e.cause, cause);
});

test('phone_required: a declined phone button keeps the page waiting; the next tap completes it', async () => {
  const { fake, auth } = withPage();
  fake.server.once(LOGIN, phoneRequired());
  const waiting = auth.request({ url: '/api/x' });
  await flush();
  const e = await rejection(auth.loginWithPhone({ errMsg: 'getPhoneNumber:fail user deny' }));
  assertAuthError(e, 'phone_denied');
  assert.equal(e.message, 'getPhoneNumber:fail user deny');
  assert.equal(fake.count('request', REGISTER), 0);
  await auth.loginWithPhone({ code: 'P2' });
  assert.equal((await waiting).data.token, 'A1');
});

test('phone_required: a failed register keeps the page waiting and the next tap logs in with a fresh code', async () => {
  const { fake, auth } = withPage();
  fake.server.once(LOGIN, phoneRequired());
  const waiting = auth.request({ url: '/api/x' });
  await flush();
  fake.server.once(REGISTER, error(409, 'phone_in_use'));
  assertAuthError(await rejection(auth.loginWithPhone({ code: 'P1' })), 'phone_in_use');
  await auth.loginWithPhone({ code: 'P2' });
  assert.equal((await waiting).data.token, 'A1');
  assert.deepEqual(fake.made('request', LOGIN).map((c) => c.data), [
    { code: 'C1', appid: undefined },
    { code: 'C2', appid: undefined, phone_code: 'P2' },
  ]);
});

test('phone_required: an old ticket is not used; loginWithPhone sends a fresh code with the phone code', async () => {
  const { fake, auth, clock } = withPage();
  fake.server.once(LOGIN, phoneRequired());
  const waiting = auth.request({ url: '/api/x' });
  await flush();
  clock.advance(5 * 60_000);
  await auth.loginWithPhone({ code: 'P1' });
  assert.equal(fake.count('request', REGISTER), 0);
  assert.deepEqual(fake.made('request', LOGIN)[1].data, { code: 'C2', appid: undefined, phone_code: 'P1' });
  assert.equal((await waiting).data.token, 'A1');
});

test('phone_required without a hook rejects with the ticket, which loginWithPhone then uses', async () => {
  const { fake, auth } = setup({ appid: 'wx0000000000000002' });
  fake.server.once(LOGIN, phoneRequired('T9'));
  const e = await rejection(auth.ensureLogin());
  assertAuthError(e, 'phone_required');
  assert.equal(e.status, 403);
  assert.equal(e.loginTicket, 'T9');
  await auth.loginWithPhone({ code: 'P1' });
  assert.deepEqual(fake.made('request', REGISTER)[0].data, { login_ticket: 'T9', phone_code: 'P1' });
  assert.equal(fake.made('request', LOGIN)[0].data.appid, 'wx0000000000000002');
  assert.equal(await auth.getAccessToken(), 'A1');
});

test('register with an explicit ticket completes the pending login', async () => {
  const { fake, auth, contexts } = withPage();
  fake.server.once(LOGIN, phoneRequired('T5'));
  const waiting = auth.request({ url: '/api/x' });
  await flush();
  await auth.register({ loginTicket: contexts[0].loginTicket, phoneCode: 'P5' });
  assert.deepEqual(fake.made('request', REGISTER)[0].data, { login_ticket: 'T5', phone_code: 'P5' });
  assert.equal((await waiting).data.token, 'A1');
});

test('silentLogin: false asks for the login page instead of calling wx.login; login() completes it', async () => {
  const { fake, auth, contexts } = withPage({ silentLogin: false });
  const waiting = requests(auth, 2);
  await flush();
  assert.deepEqual(contexts, [{ reason: 'login_required' }]);
  assert.equal(fake.count('login'), 0);
  await auth.login();
  for (const a of await Promise.all(waiting)) assert.equal(a.data.token, 'A1');
  assert.equal(fake.count('login'), 1);
});

test('silentLogin: false without a hook rejects with login_required', async () => {
  const { fake, auth } = setup({ silentLogin: false });
  assertAuthError(await rejection(auth.ensureLogin()), 'login_required');
  assert.equal(fake.count('login'), 0);
});

test('a logout while the login page is open fails the waiters with logged_out', async () => {
  const { fake, auth } = withPage();
  fake.server.once(LOGIN, phoneRequired());
  const waiting = rejection(auth.request({ url: '/api/x' }));
  await flush();
  await auth.logout();
  assertAuthError(await waiting, 'logged_out');
  // The ticket went with the session: the phone button now logs in with a fresh code.
  await auth.loginWithPhone({ code: 'P1' });
  assert.equal(fake.count('request', REGISTER), 0);
});
