// The shared login/refresh and the 401 handling, with every race forced by holding fake calls.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { flush } from './fake-platform.mjs';
import { LOGIN, LOGOUT, REFRESH, assertAuthError, error, json, loggedIn, rejection, setup } from './support.mjs';

const many = (auth, n, prefix = '/api/items') =>
  Array.from({ length: n }, (_, i) => auth.request({ url: `${prefix}/${i}` }));

test('cold start: concurrent requests share one wx.login and one login POST', async () => {
  const { fake, auth } = setup();
  fake.pause('login');
  fake.pause('request', LOGIN);
  const first = many(auth, 5);
  const wxLogin = await fake.next('login');
  const more = many(auth, 5, '/api/more'); // while wx.login is in flight
  await flush();
  assert.equal(fake.count('login'), 1);
  wxLogin.release();
  const post = await fake.next('request', LOGIN);
  const late = many(auth, 5, '/api/late'); // while the login POST is in flight
  await flush();
  assert.equal(fake.count('request', LOGIN), 1);
  assert.deepEqual(post.data, { code: 'C1', appid: undefined });
  post.release();
  const answers = await Promise.all([...first, ...more, ...late]);
  assert.equal(fake.count('login'), 1);
  assert.equal(fake.count('request', LOGIN), 1);
  for (const a of answers) {
    assert.equal(a.statusCode, 200);
    assert.equal(a.data.token, 'A1');
  }
});

test('401 storm: concurrent 401s cause one refresh and every request is retried with the new token', async () => {
  const { fake, auth } = await loggedIn();
  fake.server.expireAccessTokens();
  fake.pause('request', REFRESH);
  const requests = many(auth, 8);
  const refresh = await fake.next('request', REFRESH);
  await flush();
  // All eight went out with A1 and came back 401 while the one refresh is held.
  assert.equal(fake.made('request').filter((c) => c.path.startsWith('/api/') && c.token === 'A1').length, 8);
  assert.equal(fake.count('request', REFRESH), 1);
  assert.deepEqual(refresh.data, { refresh_token: 'R1' });
  refresh.release();
  const answers = await Promise.all(requests);
  for (const a of answers) assert.equal(a.data.token, 'A2');
  assert.equal(fake.count('request', REFRESH), 1);
  assert.equal(fake.count('login'), 1);
});

test('requests started while a refresh is in flight wait for it instead of sending the old token', async () => {
  const { fake, auth } = await loggedIn();
  fake.server.expireAccessTokens();
  fake.pause('request', REFRESH);
  const first = auth.request({ url: '/api/first' });
  const refresh = await fake.next('request', REFRESH);
  const second = auth.request({ url: '/api/second' });
  await flush();
  assert.equal(fake.count('request', '/api/second'), 0);
  refresh.release();
  assert.equal((await first).data.token, 'A2');
  assert.equal((await second).data.token, 'A2');
  assert.equal(fake.count('request', '/api/second'), 1);
});

test('a 401 for a token that was already replaced is retried at once, without another refresh', async () => {
  const { fake, auth } = await loggedIn();
  fake.pause('request', '/api/slow');
  const slow = auth.request({ url: '/api/slow' });
  const held = await fake.next('request', '/api/slow');
  assert.equal(held.token, 'A1');
  fake.resume('request', '/api/slow');
  fake.server.expireAccessTokens();
  assert.equal((await auth.request({ url: '/api/other' })).data.token, 'A2');
  assert.equal(fake.count('request', REFRESH), 1);
  held.release(); // A1 is refused now: 401
  const answer = await slow;
  assert.equal(answer.statusCode, 200);
  assert.equal(answer.data.token, 'A2');
  assert.equal(fake.count('request', REFRESH), 1);
  assert.deepEqual(fake.made('request', '/api/slow').map((c) => c.token), ['A1', 'A2']);
});

test('the original request is retried at most once', async () => {
  const { fake, auth } = await loggedIn();
  fake.server.once('/api/x', error(401, 'invalid_token'));
  fake.server.once('/api/x', error(401, 'invalid_token'));
  const answer = await auth.request({ url: '/api/x' });
  assert.equal(answer.statusCode, 401);
  assert.equal(answer.data.error, 'invalid_token');
  assert.equal(fake.count('request', '/api/x'), 2);
  assert.equal(fake.count('request', REFRESH), 1);
});

test('a failed renewal rejects every waiter with one error and is not kept', async () => {
  const { fake, auth } = setup();
  fake.pause('request', LOGIN);
  const waiting = many(auth, 5).map(rejection);
  const post = await fake.next('request', LOGIN);
  post.resolve(error(503, 'wechat_unavailable'));
  const errors = await Promise.all(waiting);
  assertAuthError(errors[0], 'wechat_unavailable');
  assert.equal(errors[0].status, 503);
  assert.equal(errors[0].requestId, 'req-test');
  for (const e of errors) assert.equal(e, errors[0]);
  assert.equal(fake.count('login'), 1);

  fake.resume('request', LOGIN);
  const answer = await auth.request({ url: '/api/again' });
  assert.equal(answer.data.token, 'A1');
  assert.equal(fake.count('login'), 2);
});

test('a failed refresh rejects every waiter with one error and the next call refreshes again', async () => {
  const { fake, auth } = await loggedIn();
  fake.server.expireAccessTokens();
  fake.pause('request', REFRESH);
  const waiting = many(auth, 3).map(rejection);
  (await fake.next('request', REFRESH)).fail('request:fail timeout');
  const errors = await Promise.all(waiting);
  assertAuthError(errors[0], 'network_error');
  assert.equal(errors[0].message, 'request:fail timeout');
  for (const e of errors) assert.equal(e, errors[0]);
  fake.resume('request', REFRESH);
  assert.equal((await auth.request({ url: '/api/again' })).data.token, 'A2');
  assert.equal(fake.count('request', REFRESH), 2);
  assert.equal(fake.count('login'), 1);
});

test('logout during a login wins: waiters fail, the late session is revoked and never stored', async () => {
  const { fake, auth } = setup();
  const events = [];
  auth.on('login', () => events.push('login'));
  auth.on('logout', (e) => events.push(`logout:${e.reason}`));
  fake.pause('login');
  const waiting = many(auth, 3).map(rejection);
  const wxLogin = await fake.next('login');
  await auth.logout();
  const errors = await Promise.all(waiting);
  assertAuthError(errors[0], 'logged_out');
  for (const e of errors) assert.equal(e, errors[0]);

  fake.resume('login');
  wxLogin.release();
  await flush();
  // The login POST still went out (the code was spent); its tokens were revoked at once.
  assert.equal(fake.count('request', LOGIN), 1);
  assert.deepEqual(fake.made('request', LOGOUT).map((c) => c.token), ['A1']);
  assert.equal(fake.server.access.size, 0);
  assert.equal(fake.storage.size, 0);
  assert.equal(auth.currentUser(), null);
  assert.deepEqual(events, ['logout:logout']);

  // A later call logs in afresh.
  assert.equal((await auth.request({ url: '/api/after' })).data.token, 'A2');
});

test('logout during a refresh wins', async () => {
  const { fake, auth, clock } = await loggedIn();
  clock.advance(900_000); // due for a refresh
  fake.pause('request', REFRESH);
  const waiting = rejection(auth.request({ url: '/api/x' }));
  const refresh = await fake.next('request', REFRESH);
  await auth.logout();
  assertAuthError(await waiting, 'logged_out');
  assert.deepEqual(fake.made('request', LOGOUT).map((c) => c.token), ['A1']);
  refresh.release();
  await flush();
  assert.deepEqual(fake.made('request', LOGOUT).map((c) => c.token), ['A1', 'A2']);
  assert.equal(fake.server.access.size, 0);
  assert.equal(fake.storage.size, 0);
  assert.equal(fake.count('request', '/api/x'), 0);
});

test('a request in flight during logout does not log in again when it comes back 401', async () => {
  const { fake, auth } = await loggedIn();
  fake.pause('request', '/api/x');
  const pending = rejection(auth.request({ url: '/api/x' }));
  const held = await fake.next('request', '/api/x');
  await auth.logout();
  held.release(); // A1 was revoked: 401
  assertAuthError(await pending, 'logged_out');
  assert.equal(fake.count('login'), 1);
  assert.equal(fake.count('request', REFRESH), 0);
});

test('logout with an expired access token refreshes once to revoke the session on the server', async () => {
  const { fake, auth } = await loggedIn();
  fake.server.expireAccessTokens();
  await auth.logout({ allDevices: true });
  assert.deepEqual(fake.made('request', LOGOUT).map((c) => [c.token, c.data.all_devices]), [
    ['A1', true],
    ['A2', true],
  ]);
  assert.equal(fake.count('request', REFRESH), 1);
  assert.equal(fake.server.access.size, 0);
});

test('a refresh answered 401 goes to one fresh wx.login, not to the 401 handling', async () => {
  const { fake, auth } = await loggedIn();
  const reasons = [];
  auth.on('logout', (e) => reasons.push(e.reason));
  fake.server.refresh.set('R1', 'revoked');
  fake.server.expireAccessTokens();
  const answer = await auth.request({ url: '/api/x' });
  assert.equal(answer.data.token, 'A2');
  assert.equal(fake.count('request', REFRESH), 1);
  assert.equal(fake.count('login'), 2);
  assert.deepEqual(reasons, ['expired']);
});

test('a login answered 401 fails as it is: login calls bypass the 401 handling', async () => {
  const { fake, auth } = setup();
  fake.server.once(LOGIN, error(401, 'invalid_token'));
  assertAuthError(await rejection(auth.request({ url: '/api/x' })), 'invalid_token');
  assert.equal(fake.count('request', LOGIN), 1);
  assert.equal(fake.count('request', REFRESH), 0);
  assert.equal(fake.count('request', '/api/x'), 0);
});

test('invalid_code leads to one fresh wx.login', async () => {
  const { fake, auth } = setup();
  fake.server.once(LOGIN, error(400, 'invalid_code'));
  assert.equal((await auth.request({ url: '/api/x' })).data.token, 'A1');
  assert.deepEqual(fake.made('request', LOGIN).map((c) => c.data.code), ['C1', 'C2']);
  assert.equal(fake.count('login'), 2);
});

test('invalid_code twice fails, without a loop', async () => {
  const { fake, auth } = setup();
  fake.server.once(LOGIN, error(400, 'invalid_code'));
  fake.server.once(LOGIN, error(400, 'invalid_code'));
  assertAuthError(await rejection(auth.request({ url: '/api/x' })), 'invalid_code');
  assert.equal(fake.count('login'), 2);
  assert.equal(fake.count('request', LOGIN), 2);
});

test('a failing wx.login rejects with login_failed', async () => {
  const { fake, auth } = setup();
  fake.pause('login');
  const pending = rejection(auth.ensureLogin());
  (await fake.next('login')).fail('login:fail no network');
  const e = await pending;
  assertAuthError(e, 'login_failed');
  assert.equal(e.message, 'login:fail no network');
  assert.equal(fake.count('request', LOGIN), 0);
});

test('proactive refresh shortly before expiry, on durations of the device clock only', async () => {
  // A device clock far from the real time: only differences matter.
  const clock = { t: 42, now: () => clock.t, advance: (ms) => (clock.t += ms) };
  const { fake, auth } = await loggedIn({ clock });
  clock.advance(839_999); // 14 min: more than the 60 s leeway left
  assert.equal((await auth.request({ url: '/api/a' })).data.token, 'A1');
  assert.equal(fake.count('request', REFRESH), 0);
  clock.advance(1); // 60 s before expiry
  fake.pause('request', REFRESH);
  const requests = many(auth, 4);
  const refresh = await fake.next('request', REFRESH);
  await flush();
  assert.equal(fake.count('request', REFRESH), 1);
  refresh.release();
  for (const a of await Promise.all(requests)) assert.equal(a.data.token, 'A2');
  // Refreshed before sending: no request went out with A1 and came back 401.
  assert.equal(fake.made('request').filter((c) => c.path.startsWith('/api/items') && c.token === 'A1').length, 0);
});

test('a short-lived token is refreshed after half its lifetime at most', async () => {
  const { fake, auth, clock } = setup();
  fake.server.ttl = 2;
  await auth.ensureLogin();
  clock.advance(999);
  await auth.getAccessToken();
  assert.equal(fake.count('request', REFRESH), 0);
  clock.advance(1);
  assert.equal(await auth.getAccessToken(), 'A2');
  assert.equal(fake.count('request', REFRESH), 1);
});

test('auth: false sends no token and never logs in', async () => {
  const { fake, auth } = setup();
  fake.server.once('/public', json(200, 'hello'));
  const answer = await auth.request({ url: '/public', auth: false });
  assert.equal(answer.data, 'hello');
  assert.equal(fake.made('request', '/public')[0].header.Authorization, undefined);
  assert.equal(fake.count('login'), 0);
});

test('ordinary requests, logins and refreshes never call wx.checkSession', async () => {
  const { fake, auth } = await loggedIn();
  fake.server.expireAccessTokens();
  await Promise.all(many(auth, 3));
  await auth.logout();
  await auth.request({ url: '/api/x' });
  assert.equal(fake.count('checkSession'), 0);
});

test('a refresh answered with a 4xx other than invalid_grant drops the session and logs in again', async () => {
  const answers = {
    '413 payload_too_large (an oversized token)': error(413, 'payload_too_large'),
    "400 from a proxy (not wxlogin's JSON)": json(400, '<html>Bad Request</html>'),
    '403 from a proxy': json(403, 'Forbidden'),
    '401 without an error body': json(401, ''),
    '404': error(404, 'not_found'),
  };
  for (const [name, answer] of Object.entries(answers)) {
    const { fake, auth } = await loggedIn();
    const reasons = [];
    auth.on('logout', (e) => reasons.push(e.reason));
    fake.server.expireAccessTokens();
    fake.server.once(REFRESH, answer);
    const res = await auth.request({ url: '/api/x' });
    assert.equal(res.statusCode, 200, name);
    assert.equal(res.data.token, 'A2', name);
    assert.equal(fake.count('request', REFRESH), 1, name);
    assert.equal(fake.count('login'), 2, name);
    assert.deepEqual(reasons, ['expired'], name);
    assert.equal(JSON.parse(fake.storage.get('wxlogin.session')).refreshToken, 'R2', name);
  }
});

test('a refresh answered 408, 429 or 5xx keeps the session and fails only this attempt', async () => {
  for (const status of [408, 429, 500, 502, 503]) {
    const { fake, auth } = await loggedIn();
    const reasons = [];
    auth.on('logout', (e) => reasons.push(e.reason));
    fake.server.expireAccessTokens();
    fake.server.once(REFRESH, error(status, status === 429 ? 'rate_limited' : 'unavailable'));
    const e = await rejection(auth.request({ url: '/api/x' }));
    assert.equal(e.status, status);
    assert.equal(fake.count('login'), 1, `${status}`);
    assert.deepEqual(reasons, [], `${status}`);
    assert.equal(JSON.parse(fake.storage.get('wxlogin.session')).refreshToken, 'R1', `${status}`);
    // The next call refreshes again with the same refresh token.
    assert.equal((await auth.request({ url: '/api/x' })).data.token, 'A2', `${status}`);
    assert.deepEqual(fake.made('request', REFRESH).map((c) => c.data.refresh_token), ['R1', 'R1'], `${status}`);
    assert.equal(fake.count('login'), 1, `${status}`);
  }
});

test('a business 401 without the Bearer invalid_token challenge is returned as is: no refresh, no retry', async () => {
  const { fake, auth } = await loggedIn();
  const answers = [
    json(401, { error: 'not_a_member' }),
    json(401, { error: 'invalid_token' }), // wxlogin's code in the body, but no challenge
    json(401, 'Unauthorized', { 'WWW-Authenticate': 'Basic realm="shop"' }),
    json(401, {}, { 'WWW-Authenticate': 'Bearer realm="shop"' }),
    json(401, {}, { 'WWW-Authenticate': 'Bearer error="insufficient_scope"' }),
    json(401, {}, { 'WWW-Authenticate': 'Bearer realm="error=\\"invalid_token\\""' }),
    json(401, {}, { 'WWW-Authenticate': 'Basic error="invalid_token"' }),
    json(401, {}, { 'WWW-Authenticate': 'Bearerx error="invalid_token"' }),
  ];
  for (const [i, answer] of answers.entries()) {
    fake.server.once(`/api/business/${i}`, answer);
    const res = await auth.request({ url: `/api/business/${i}` });
    assert.equal(res.statusCode, 401, `answer ${i}`);
    assert.deepEqual(res.data, answer.data, `answer ${i}`);
    assert.equal(fake.count('request', `/api/business/${i}`), 1, `answer ${i}`);
  }
  assert.equal(fake.count('request', REFRESH), 0);
  assert.equal(fake.count('login'), 1);
  assert.equal((await auth.request({ url: '/api/x' })).data.token, 'A1');
});

test('a 401 with the Bearer invalid_token challenge renews, however the challenge is written', async () => {
  const challenges = [
    { 'WWW-Authenticate': 'Bearer error="invalid_token"' },
    { 'www-authenticate': 'bearer error="invalid_token"' },
    { 'Www-Authenticate': 'BEARER realm="api", error=invalid_token, error_description="The access token expired"' },
    { 'www-authenticate': 'Basic realm="a, b", Bearer realm="api",error = "invalid_token"' },
    { 'WWW-Authenticate': 'Bearer error="invalid\\_token"' },
  ];
  const { fake, auth } = await loggedIn();
  for (const [i, header] of challenges.entries()) {
    const path = `/api/renew/${i}`;
    fake.server.expireAccessTokens();
    fake.server.once(path, json(401, { error: 'invalid_token' }, header));
    const res = await auth.request({ url: path });
    assert.equal(res.statusCode, 200, `challenge ${i}`);
    assert.equal(res.data.token, `A${i + 2}`, `challenge ${i}`);
    assert.equal(fake.count('request', REFRESH), i + 1, `challenge ${i}`);
  }
});

test('an early refresh that fails while the access token is still valid sends the request with the current token', async () => {
  const { fake, auth, clock } = await loggedIn();
  clock.advance(840_000); // 60 s before expiry: due for a refresh
  fake.pause('request', REFRESH);
  const requests = many(auth, 3);
  (await fake.next('request', REFRESH)).resolve(error(503, 'unavailable'));
  for (const a of await Promise.all(requests)) {
    assert.equal(a.statusCode, 200);
    assert.equal(a.data.token, 'A1');
  }
  assert.equal(fake.count('request', REFRESH), 1);
  // A moment before expiry the next call tries again, and still uses A1 when there is no answer.
  clock.advance(59_999);
  const token = auth.getAccessToken();
  (await fake.next('request', REFRESH)).fail('request:fail timeout');
  assert.equal(await token, 'A1');
  fake.resume('request', REFRESH);
  assert.equal((await auth.request({ url: '/api/y' })).data.token, 'A2');
  assert.equal(fake.count('request', REFRESH), 3);
});

test('once the access token has expired, a failed refresh fails the call', async () => {
  const { fake, auth, clock } = await loggedIn();
  clock.advance(900_000);
  fake.server.once(REFRESH, error(503, 'unavailable'));
  assertAuthError(await rejection(auth.request({ url: '/api/x' })), 'unavailable');
  assert.equal(fake.count('request', '/api/x'), 0);
});

test('a failed refresh after a 401 does not fall back to the refused token', async () => {
  const { fake, auth } = await loggedIn();
  fake.server.expireAccessTokens();
  fake.pause('request', REFRESH);
  const first = rejection(auth.request({ url: '/api/first' }));
  const refresh = await fake.next('request', REFRESH);
  const second = rejection(auth.request({ url: '/api/second' }));
  await flush();
  refresh.resolve(error(503, 'unavailable'));
  assertAuthError(await first, 'unavailable');
  assertAuthError(await second, 'unavailable');
  assert.equal(fake.count('request', '/api/second'), 0);
  assert.equal(fake.count('request', REFRESH), 1);
});
