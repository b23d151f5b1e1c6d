import assert from 'node:assert/strict';
import { AuthError, createAuthClient } from '../../dist/index.mjs';
import { BASE, FakePlatform, error, fakeClock } from './fake-platform.mjs';

export const LOGIN = '/v1/auth/wechat/login';
export const REGISTER = '/v1/auth/wechat/register';
export const REFRESH = '/v1/auth/refresh';
export const LOGOUT = '/v1/auth/logout';

export const json = (statusCode, data, header = {}) => ({ statusCode, data, header });
export { error };

/** A client on a fake platform and a hand-moved clock. */
export function setup(options = {}, platform = new FakePlatform()) {
  const clock = options.clock || fakeClock();
  const auth = createAuthClient({ baseURL: BASE, platform, now: clock.now, ...options });
  return { fake: platform, clock, auth };
}

/** As `setup`, already logged in with A1/R1. */
export async function loggedIn(options, platform) {
  const t = setup(options, platform);
  await t.auth.ensureLogin();
  assert.equal(t.fake.count('login'), 1);
  return t;
}

/** The rejection of `promise` (fails the test if it resolves). */
export function rejection(promise) {
  return promise.then(
    (value) => assert.fail(`expected a rejection, got ${JSON.stringify(value)}`),
    (e) => e,
  );
}

/** Asserts an AuthError with this code. */
export function assertAuthError(e, code) {
  assert.ok(e instanceof AuthError, `expected an AuthError, got ${e}`);
  assert.equal(e.code, code);
}
