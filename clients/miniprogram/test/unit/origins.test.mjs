// Where the access token goes: baseURL's origin and the origins in `authorizedOrigins`, nowhere else.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { REFRESH, error, json, loggedIn, setup } from './support.mjs';

const API = 'https://api.example.com';

/** The Authorization header each request to `url` went out with. */
const sentWith = (fake, url) => fake.made('request').filter((c) => c.url === url).map((c) => c.header.Authorization);

test('full URLs on other origins get no token, no login and no 401 handling', async () => {
  const { fake, auth } = setup();
  const others = [
    'https://other.example/x',
    `${API}/orders`, // not in authorizedOrigins
    'http://login.test/x', // another scheme
    'https://login.test:8443/x', // another port
    'https://login.test.evil.example/x',
    'https://login.test@evil.example/x', // userinfo: the host is evil.example
    'https://login.test\\@evil.example/x',
  ];
  for (const url of others) {
    const res = await auth.request({ url });
    assert.equal(res.statusCode, 401, url);
    assert.deepEqual(sentWith(fake, url), [undefined], url);
  }
  const upload = await auth.uploadFile({ url: 'https://files.example/u', filePath: 'http://tmp/a.png', name: 'f' });
  assert.equal(fake.made('upload')[0].header.Authorization, undefined);
  assert.equal(upload.statusCode, 401);
  assert.equal(fake.count('login'), 0);
  assert.equal(fake.count('request', REFRESH), 0);
});

test('a relative URL that would change the host gets no token', async () => {
  const { fake, auth } = await loggedIn();
  for (const url of ['@evil.example/x', '.evil.example/x', ':8443/x']) {
    await auth.request({ url });
    const [sent] = fake.made('request').filter((c) => c.url === `https://login.test${url}`);
    assert.equal(sent.header.Authorization, undefined, url);
  }
  assert.equal(sentWith(fake, 'https://login.test/x').length, 0);
  await auth.request({ url: '/x' });
  assert.deepEqual(sentWith(fake, 'https://login.test/x'), ['Bearer A1']);
});

test('baseURL and authorizedOrigins get the token and the 401 handling, whatever the case and default port', async () => {
  const { fake, auth } = await loggedIn({ authorizedOrigins: [API, 'http://127.0.0.1:8080'] });
  const urls = [
    'https://login.test/api/x',
    'HTTPS://LOGIN.TEST:443/api/x',
    `${API}/orders`,
    'https://API.example.com:443/orders?x=1',
    'http://127.0.0.1:8080/y',
  ];
  for (const url of urls) {
    const res = await auth.request({ url });
    assert.equal(res.statusCode, 200, url);
    assert.deepEqual(sentWith(fake, url), ['Bearer A1'], url);
  }
  fake.server.expireAccessTokens();
  fake.server.once(`${API}/orders/7`, error(401, 'invalid_token'));
  fake.server.once(`${API}/orders/7`, json(200, { ok: true }));
  const res = await auth.request({ url: `${API}/orders/7` });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(sentWith(fake, `${API}/orders/7`), ['Bearer A1', 'Bearer A2']);
  assert.equal(fake.count('request', REFRESH), 1);
});

test('authorizedOrigins takes exact origins only', () => {
  for (const bad of ['https://api.example.com/', 'https://api.example.com/v1', 'api.example.com', 'https://*.example.com', 'https://u@api.example.com', 'ftp://api.example.com']) {
    assert.throws(() => setup({ authorizedOrigins: [bad] }), TypeError, bad);
  }
});
