// phone_required, registration_closed and explicit sign-in pages: onLoginRequired, loginWithPhone,
// register, cancelLogin; which register failures keep the login_ticket; identity_conflict.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { flush } from './fake-platform.mjs';
import { LOGIN, REGISTER, assertAuthError, error, rejection, setup } from './support.mjs';

const phoneRequired = (ticket = 'T1') => error(403, 'phone_required', { login_ticket: ticket });
const closedWithTicket = (ticket = 'T1') => error(403, 'registration_closed', { login_ticket: ticket });
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

for (const [status, code] of [
  [409, 'phone_in_use'],
  [400, 'invalid_code'],
]) {
  test(`phone_required: ${code} from register keeps the ticket and the page waiting; the next tap registers with it`, async () => {
    const { fake, auth } = withPage();
    fake.server.once(LOGIN, phoneRequired());
    const waiting = auth.request({ url: '/api/x' });
    await flush();
    fake.server.once(REGISTER, error(status, code));
    assertAuthError(await rejection(auth.loginWithPhone({ code: 'P1' })), code);
    await auth.loginWithPhone({ code: 'P2' });
    assert.equal((await waiting).data.token, 'A1');
    assert.deepEqual(fake.made('request', REGISTER).map((c) => c.data), [
      { login_ticket: 'T1', phone_code: 'P1' },
      { login_ticket: 'T1', phone_code: 'P2' },
    ]);
    assert.equal(fake.count('request', LOGIN), 1);
    assert.equal(fake.count('login'), 1);
  });
}

test('phone_required: a register that got no answer keeps the ticket for the next tap', async () => {
  const { fake, auth } = withPage();
  fake.server.once(LOGIN, phoneRequired());
  const waiting = auth.request({ url: '/api/x' });
  await flush();
  fake.pause('request', REGISTER);
  const first = rejection(auth.loginWithPhone({ code: 'P1' }));
  (await fake.next('request', REGISTER)).fail('request:fail timeout');
  assertAuthError(await first, 'network_error');
  fake.resume('request', REGISTER);
  await auth.loginWithPhone({ code: 'P2' });
  assert.equal((await waiting).data.token, 'A1');
  assert.deepEqual(fake.made('request', REGISTER).map((c) => c.data.login_ticket), ['T1', 'T1']);
});

test('invalid_ticket from register: the ticket is dropped and the tap starts over with one wx.login and the phone code', async () => {
  const { fake, auth, contexts } = withPage();
  fake.server.once(LOGIN, phoneRequired());
  const waiting = requests(auth, 2);
  await flush();
  fake.server.once(REGISTER, error(400, 'invalid_ticket'));
  const user = await auth.loginWithPhone({ code: 'P1' });
  assert.equal(user.id, 'u_1');
  for (const a of await Promise.all(waiting)) assert.equal(a.data.token, 'A1');
  assert.deepEqual(fake.made('request', REGISTER).map((c) => c.data), [{ login_ticket: 'T1', phone_code: 'P1' }]);
  assert.deepEqual(fake.made('request', LOGIN).map((c) => c.data), [
    { code: 'C1', appid: undefined },
    { code: 'C2', appid: undefined, phone_code: 'P1' },
  ]);
  assert.equal(fake.count('login'), 2);
  assert.equal(contexts.length, 1);
});

test('invalid_ticket from register, then a failed fresh login: no loop, and the ticket stays dropped', async () => {
  const { fake, auth } = withPage();
  fake.server.once(LOGIN, phoneRequired());
  const waiting = auth.request({ url: '/api/x' });
  await flush();
  fake.server.once(REGISTER, error(400, 'invalid_ticket'));
  fake.server.once(LOGIN, error(409, 'phone_in_use'));
  assertAuthError(await rejection(auth.loginWithPhone({ code: 'P1' })), 'phone_in_use');
  assert.equal(fake.count('request', REGISTER), 1);
  assert.equal(fake.count('request', LOGIN), 2);
  assert.equal(fake.count('login'), 2);

  // The page is still waiting; the next tap starts over again, without the dropped ticket.
  await auth.loginWithPhone({ code: 'P2' });
  assert.equal((await waiting).data.token, 'A1');
  assert.equal(fake.count('request', REGISTER), 1);
  assert.deepEqual(fake.made('request', LOGIN)[2].data, { code: 'C3', appid: undefined, phone_code: 'P2' });
});

test('register() with an explicit ticket that is no longer valid rejects with invalid_ticket, no fallback', async () => {
  const { fake, auth, contexts } = withPage();
  fake.server.once(LOGIN, phoneRequired('T5'));
  const waiting = auth.request({ url: '/api/x' });
  await flush();
  fake.server.once(REGISTER, error(400, 'invalid_ticket'));
  const e = await rejection(auth.register({ loginTicket: contexts[0].loginTicket, phoneCode: 'P5' }));
  assertAuthError(e, 'invalid_ticket');
  assert.equal(fake.count('request', LOGIN), 1);
  // The dropped ticket is not used again.
  await auth.loginWithPhone({ code: 'P6' });
  assert.equal(fake.count('request', REGISTER), 1);
  assert.deepEqual(fake.made('request', LOGIN)[1].data, { code: 'C2', appid: undefined, phone_code: 'P6' });
  assert.equal((await waiting).data.token, 'A1');
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

test('registration_closed with a ticket: the hook gets the reason, loginWithPhone registers with the ticket', async () => {
  const { fake, auth, contexts } = withPage({ appid: 'wx0000000000000003' });
  fake.server.once(LOGIN, closedWithTicket('T7'));
  const waiting = requests(auth, 3);
  await flush();
  assert.equal(contexts.length, 1);
  assert.equal(contexts[0].reason, 'registration_closed');
  assert.equal(contexts[0].loginTicket, 'T7');
  assertAuthError(contexts[0].error, 'registration_closed');
  assert.equal(contexts[0].error.status, 403);

  const user = await auth.loginWithPhone({ errMsg: 'getPhoneNumber:ok', code: 'P1' });
  assert.equal(user.id, 'u_1');
  assert.deepEqual(fake.made('request', REGISTER).map((c) => c.data), [{ login_ticket: 'T7', phone_code: 'P1' }]);
  for (const a of await Promise.all(waiting)) assert.equal(a.data.token, 'A1');
  assert.equal(fake.count('login'), 1);
});

test('registration_closed without a ticket is final: every waiter fails with it, no hook, no retry', async () => {
  const { fake, auth, contexts } = withPage();
  fake.server.once(LOGIN, error(403, 'registration_closed'));
  const errors = await Promise.all(requests(auth, 3).map(rejection));
  assertAuthError(errors[0], 'registration_closed');
  assert.equal(errors[0].status, 403);
  assert.equal(errors[0].loginTicket, undefined);
  for (const e of errors) assert.equal(e, errors[0]);
  assert.equal(contexts.length, 0);
  assert.equal(fake.count('login'), 1);
  assert.equal(fake.count('request', LOGIN), 1);
});

test('registration_closed from register (no user has that number): the ticket is spent, the page keeps waiting', async () => {
  const { fake, auth } = withPage();
  fake.server.once(LOGIN, closedWithTicket());
  const waiting = auth.request({ url: '/api/x' });
  await flush();
  fake.server.once(REGISTER, error(403, 'registration_closed'));
  const e = await rejection(auth.loginWithPhone({ code: 'P1' }));
  assertAuthError(e, 'registration_closed');
  assert.equal(fake.count('request', LOGIN), 1);
  // Another number (say, the one the operator imported): a fresh code with the phone code.
  await auth.loginWithPhone({ code: 'P2' });
  assert.equal((await waiting).data.token, 'A1');
  assert.equal(fake.count('request', REGISTER), 1);
  assert.deepEqual(fake.made('request', LOGIN)[1].data, { code: 'C2', appid: undefined, phone_code: 'P2' });
});

test('registration_closed with a ticket and no hook rejects with the ticket, which loginWithPhone then uses', async () => {
  const { fake, auth } = setup();
  fake.server.once(LOGIN, closedWithTicket('T8'));
  const e = await rejection(auth.ensureLogin());
  assertAuthError(e, 'registration_closed');
  assert.equal(e.loginTicket, 'T8');
  await auth.loginWithPhone({ code: 'P1' });
  assert.deepEqual(fake.made('request', REGISTER)[0].data, { login_ticket: 'T8', phone_code: 'P1' });
  assert.equal(await auth.getAccessToken(), 'A1');
});

test('identity_conflict on login is final: every waiter fails with it, no second wx.login, no hook', async () => {
  const { fake, auth, contexts } = withPage();
  fake.server.once(LOGIN, error(409, 'identity_conflict'));
  const errors = await Promise.all(requests(auth, 3).map(rejection));
  assertAuthError(errors[0], 'identity_conflict');
  assert.equal(errors[0].status, 409);
  for (const e of errors) assert.equal(e, errors[0]);
  assert.equal(fake.count('login'), 1);
  assert.equal(fake.count('request', LOGIN), 1);
  assert.equal(contexts.length, 0);
});

test('identity_conflict on register is final: no fallback login, and the ticket is dropped', async () => {
  const { fake, auth } = withPage();
  fake.server.once(LOGIN, phoneRequired());
  const waiting = rejection(auth.request({ url: '/api/x' }));
  await flush();
  fake.server.once(REGISTER, error(409, 'identity_conflict'));
  assertAuthError(await rejection(auth.loginWithPhone({ code: 'P1' })), 'identity_conflict');
  assert.equal(fake.count('request', REGISTER), 1);
  assert.equal(fake.count('request', LOGIN), 1);
  assert.equal(fake.count('login'), 1);
  auth.cancelLogin();
  assertAuthError(await waiting, 'login_cancelled');
  // A later tap does not send the spent ticket.
  await auth.loginWithPhone({ code: 'P2' });
  assert.equal(fake.count('request', REGISTER), 1);
});
