// Phone numbers against the real wxlogin: bindPhone with a simulator phone code, and an app with
// `registration = "phone_required"` whose login page (played by the onLoginRequired hook) completes
// the login with the login_ticket. Needs the server side of phone binding: POST /v1/me/phone,
// `phone_code` on login, 403 phone_required with `login_ticket`, POST /v1/auth/wechat/register.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { DEMO_APP, client, startStack } from './harness.mjs';

const PHONE_APP = {
  appid: 'wx0000000000000002',
  secret: 'fedcba9876543210fedcba9876543210',
  registration: 'phone_required',
};

let stack;
before(async () => {
  stack = await startStack({ apps: [DEMO_APP, PHONE_APP] });
});
after(() => stack && stack.stop());

/** What the getPhoneNumber button gives the mini program (a single-use code). */
async function phoneButton(appid, user, phone) {
  const { code } = await stack.mockPost('/__mock/phone-code', { appid, user, phone, country_code: '86' });
  return { errMsg: 'getPhoneNumber:ok', code };
}

const LOGIN = '/v1/auth/wechat/login';
const REGISTER = '/v1/auth/wechat/register';

test('bindPhone with the code of the getPhoneNumber button', async () => {
  const { auth } = client(stack, { user: 'binder', appid: DEMO_APP.appid });
  await auth.ensureLogin();
  const user = await auth.bindPhone(await phoneButton(DEMO_APP.appid, 'binder', '13800138000'));
  assert.deepEqual(user.phone, { masked: '138****8000', country_code: '86' });
  assert.deepEqual(auth.currentUser().phone, user.phone);
  assert.deepEqual((await auth.getProfile()).phone, user.phone);
});

test('bindPhone with a number bound to another account: phone_in_use', async () => {
  const { auth } = client(stack, { user: 'second-binder', appid: DEMO_APP.appid });
  await auth.ensureLogin();
  await auth.bindPhone(await phoneButton(DEMO_APP.appid, 'second-binder', '13700137000'));
  const other = client(stack, { user: 'third-binder', appid: DEMO_APP.appid });
  await other.auth.ensureLogin();
  const e = await other.auth
    .bindPhone(await phoneButton(DEMO_APP.appid, 'third-binder', '13700137000'))
    .then(assert.fail, (err) => err);
  assert.equal(e.code, 'phone_in_use');
  assert.equal(e.status, 409);
});

test('phone_required: the login page completes the login with the ticket and the waiting requests resume', async () => {
  const contexts = [];
  let pageError;
  const c = client(stack, {
    user: 'newcomer',
    appid: PHONE_APP.appid,
    onLoginRequired(context) {
      contexts.push(context);
      // The login page: the user taps the phone button, the page hands its event to the client.
      const page = async () => c.auth.loginWithPhone(await phoneButton(PHONE_APP.appid, 'newcomer', '13900139000'));
      setImmediate(() =>
        page().catch((e) => {
          pageError = e;
          c.auth.cancelLogin();
        }),
      );
    },
  });
  const answers = await Promise.all(Array.from({ length: 5 }, () => c.auth.request({ url: '/v1/me' }))).catch((e) => {
    throw pageError || e;
  });
  for (const a of answers) {
    assert.equal(a.statusCode, 200);
    assert.deepEqual(a.data.phone, { masked: '139****9000', country_code: '86' });
  }
  assert.equal(contexts.length, 1);
  assert.equal(contexts[0].reason, 'phone_required');
  assert.ok(contexts[0].loginTicket);
  assert.equal(c.count('POST', LOGIN), 1);
  assert.equal(c.count('POST', REGISTER), 1);
  assert.equal(c.logins(), 1);
  assert.equal(c.auth.currentUser().is_new, true);
});

test('phone_required: backing out of the login page fails the waiting requests with one login_cancelled', async () => {
  const c = client(stack, {
    user: 'hesitant',
    appid: PHONE_APP.appid,
    onLoginRequired: () => setImmediate(() => c.auth.cancelLogin()),
  });
  const errors = await Promise.all(
    Array.from({ length: 3 }, () => c.auth.request({ url: '/v1/me' }).then(assert.fail, (e) => e)),
  );
  assert.equal(errors[0].code, 'login_cancelled');
  for (const e of errors) assert.equal(e, errors[0]);
  assert.equal(c.count('GET', '/v1/me'), 0);
});

test('phone_required: loginWithPhone without a ticket logs in with a fresh code and the phone code', async () => {
  const c = client(stack, { user: 'direct', appid: PHONE_APP.appid });
  const user = await c.auth.loginWithPhone(await phoneButton(PHONE_APP.appid, 'direct', '13600136000'));
  assert.equal(user.is_new, true);
  assert.deepEqual(user.phone, { masked: '136****6000', country_code: '86' });
  assert.equal(c.count('POST', LOGIN), 1);
  assert.equal(c.count('POST', REGISTER), 0);

  // Now an existing user: the next launch on a new device logs in silently.
  const again = client(stack, { user: 'direct', appid: PHONE_APP.appid });
  assert.equal((await again.auth.ensureLogin()).id, user.id);
});
