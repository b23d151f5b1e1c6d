// Access tokens that really expire: wxlogin with a 2 s access-token lifetime and no leeway.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { client, getWith, savedSession, sleep, startStack } from './harness.mjs';

let stack;
before(async () => {
  stack = await startStack({ tokens: { access_ttl_secs: 2, leeway_secs: 0 } });
});
after(() => stack && stack.stop());

const REFRESH = '/v1/auth/refresh';

/** Waits until the server refuses `token` (at most ~2 s with this configuration). */
async function untilExpired(token) {
  for (let i = 0; i < 60; i++) {
    if ((await getWith(stack, '/v1/me', token)).status === 401) return;
    await sleep(100);
  }
  assert.fail('the access token did not expire');
}

test('401 storm after access-token expiry: one refresh, every request retried once', async () => {
  // A device clock that stands still: the client never refreshes ahead, so the server's expiry
  // is what the requests run into. The real expiry takes up to 2 s to come (unavoidable wait).
  const { auth, wx, count, logins } = client(stack, { user: 'expiry', now: () => 0 });
  const user = await auth.ensureLogin();
  const old = savedSession(wx.storage).accessToken;
  await untilExpired(old);

  const answers = await Promise.all(Array.from({ length: 12 }, () => auth.request({ url: '/v1/me' })));
  for (const a of answers) {
    assert.equal(a.statusCode, 200);
    assert.equal(a.data.id, user.id);
  }
  assert.equal(count('POST', REFRESH), 1);
  assert.equal(logins(), 1);
  const sent = wx.requests.filter((r) => r.path === '/v1/me');
  assert.equal(sent.length, 24);
  assert.equal(sent.filter((r) => r.auth === `Bearer ${old}`).length, 12);
  assert.equal(new Set(sent.filter((r) => r.auth !== `Bearer ${old}`).map((r) => r.auth)).size, 1);
});

test('proactive refresh on the device clock: no request runs into the expiry', async () => {
  // With a 2 s lifetime the client refreshes after 1 s (half the lifetime): a real 1.1 s wait.
  const { auth, wx, count } = client(stack, { user: 'ahead' });
  await auth.ensureLogin();
  await sleep(1100);
  const answers = await Promise.all(Array.from({ length: 5 }, () => auth.request({ url: '/v1/me' })));
  for (const a of answers) assert.equal(a.statusCode, 200);
  assert.equal(count('POST', REFRESH), 1);
  assert.equal(wx.requests.filter((r) => r.path === '/v1/me').length, 5);
});

test('logout with an expired access token still revokes the session', async () => {
  const { auth, wx, count } = client(stack, { user: 'late-leaver', now: () => 0 });
  await auth.ensureLogin();
  const saved = savedSession(wx.storage);
  await untilExpired(saved.accessToken);
  await auth.logout();
  assert.equal(count('POST', REFRESH), 1);
  const refresh = await fetch(stack.serverURL + REFRESH, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ refresh_token: saved.refreshToken }),
  });
  assert.equal(refresh.status, 401);
});
