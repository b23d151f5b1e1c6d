// An app with `registration = "closed"` against the real wxlogin: the operator imports phone numbers
// with `wxlogin users import`; an unknown WeChat user gets the login page (onLoginRequired with
// `registration_closed` and a login_ticket), and the phone button signs them in as the imported
// user. A number nobody imported is refused with registration_closed.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { AuthError } from '../../dist/index.mjs';
import { client, startStack } from './harness.mjs';

const CLOSED_APP = {
  appid: 'wx0000000000000003',
  secret: '00112233445566778899aabbccddeeff',
  registration: 'closed',
};
const IMPORTED = '13800138000';
const LOGIN = '/v1/auth/wechat/login';
const REGISTER = '/v1/auth/wechat/register';

let stack;
before(async () => {
  // Imported before the server starts; another number is imported while it runs (below).
  stack = await startStack({ apps: [CLOSED_APP], phones: [IMPORTED] });
});
after(() => stack && stack.stop());

/** What the getPhoneNumber button gives the mini program (a single-use code). */
async function phoneButton(user, phone) {
  const { code } = await stack.mockPost('/__mock/phone-code', { appid: CLOSED_APP.appid, user, phone, country_code: '86' });
  return { errMsg: 'getPhoneNumber:ok', code };
}

/** A client whose login page (the onLoginRequired hook) taps the phone button for `phone`. */
function withLoginPage(user, phone) {
  const contexts = [];
  const page = { error: null };
  const c = client(stack, {
    user,
    appid: CLOSED_APP.appid,
    onLoginRequired(context) {
      contexts.push(context);
      setImmediate(async () => {
        try {
          await c.auth.loginWithPhone(await phoneButton(user, phone));
        } catch (e) {
          // What the page would show; then the user leaves it.
          page.error = e;
          c.auth.cancelLogin();
        }
      });
    },
  });
  return { ...c, contexts, page };
}

test('registration_closed: the login page signs the unknown WeChat user in as the imported number, the waiting requests resume', async () => {
  const c = withLoginPage('invitee', IMPORTED);
  const answers = await Promise.all(Array.from({ length: 4 }, () => c.auth.request({ url: '/v1/me' }))).catch((e) => {
    throw c.page.error || e;
  });
  for (const a of answers) {
    assert.equal(a.statusCode, 200);
    assert.deepEqual(a.data.phone, { masked: '138****8000', country_code: '86' });
  }
  assert.equal(c.contexts.length, 1);
  assert.equal(c.contexts[0].reason, 'registration_closed');
  assert.ok(c.contexts[0].loginTicket);
  assert.ok(c.contexts[0].error instanceof AuthError);
  assert.equal(c.contexts[0].error.status, 403);
  assert.equal(c.count('POST', LOGIN), 1);
  assert.equal(c.count('POST', REGISTER), 1);
  assert.equal(c.logins(), 1);
  const user = c.auth.currentUser();
  assert.equal(user.is_new, false); // the operator's user, now linked to this WeChat account
  assert.equal(answers[0].data.id, user.id);

  // The WeChat account is known now: a new device logs in silently, as the same user.
  const again = client(stack, { user: 'invitee', appid: CLOSED_APP.appid });
  assert.equal((await again.auth.ensureLogin()).id, user.id);
  assert.equal(again.count('POST', REGISTER), 0);
});

test('registration_closed: a number nobody imported is refused with registration_closed on the login page', async () => {
  const c = withLoginPage('stranger', '13900139000');
  const errors = await Promise.all(
    Array.from({ length: 2 }, () => c.auth.request({ url: '/v1/me' }).then(assert.fail, (e) => e)),
  );
  assert.equal(c.contexts.length, 1);
  assert.equal(c.contexts[0].reason, 'registration_closed');
  assert.ok(c.page.error instanceof AuthError);
  assert.equal(c.page.error.code, 'registration_closed');
  assert.equal(c.page.error.status, 403);
  assert.equal(c.page.error.loginTicket, undefined);
  // The page was left: the waiting requests fail once, with login_cancelled.
  assert.equal(errors[0].code, 'login_cancelled');
  assert.equal(errors[1], errors[0]);
  assert.equal(c.count('POST', REGISTER), 1);
  assert.equal(c.count('GET', '/v1/me'), 0);
  assert.equal(c.auth.currentUser(), null);
});

test('registration_closed: loginWithPhone without a ticket sends a fresh code with the phone code', async () => {
  // A number the operator imports while the server runs.
  await stack.importUsers(['13700137000']);
  const c = client(stack, { user: 'late-invitee', appid: CLOSED_APP.appid });
  const user = await c.auth.loginWithPhone(await phoneButton('late-invitee', '13700137000'));
  assert.equal(user.is_new, false);
  assert.deepEqual(user.phone, { masked: '137****7000', country_code: '86' });
  assert.equal(c.count('POST', LOGIN), 1);
  assert.equal(c.count('POST', REGISTER), 0);

  // Not imported: a final registration_closed, without a ticket.
  const other = client(stack, { user: 'uninvited', appid: CLOSED_APP.appid });
  const e = await other.auth.loginWithPhone(await phoneButton('uninvited', '13600136000')).then(assert.fail, (err) => err);
  assert.ok(e instanceof AuthError);
  assert.equal(e.code, 'registration_closed');
  assert.equal(e.loginTicket, undefined);
  assert.equal(other.count('POST', LOGIN), 1);
  assert.equal(other.logins(), 1);
});
