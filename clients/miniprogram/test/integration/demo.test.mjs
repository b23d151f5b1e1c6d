// The demo mini program (examples/miniprogram-demo) run in Node against the real wxlogin: its app.js
// and pages are loaded with stand-ins for App, Page, getApp and wx, its config pointed at this
// stack, and the library's minified miniprogram_dist/ bundle in place of "构建 npm".
import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { fakeWx, startStack } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const library = join(here, '..', '..');
const demo = join(library, '..', '..', 'examples', 'miniprogram-demo');

let stack;
before(async () => {
  stack = await startStack();
});
after(() => stack && stack.stop());

const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);

/** Loads a copy of the demo with its config pointed at the stack; returns its pages and wx. */
function loadDemo(name, config) {
  const dir = join(stack.dir, name);
  cpSync(demo, dir, {
    recursive: true,
    filter: (src) => !/[/\\](node_modules|miniprogram_npm)$/.test(src),
  });
  writeFileSync(
    join(dir, 'config.js'),
    `module.exports = ${JSON.stringify({
      baseURL: stack.serverURL,
      appid: 'wx0000000000000001',
      simulator: stack.mockURL,
      devUser: name,
      devPhone: '13800138000',
      silentLogin: true,
      ...config,
    })};\n`,
  );
  // What "构建 npm" makes of the package: its miniprogram_dist/ as the package folder, entry index.js.
  cpSync(join(library, 'miniprogram_dist'), join(dir, 'node_modules', '@wxlogin', 'miniprogram'), { recursive: true });

  // The user name of fakeWx's own login() is never used: the demo mints codes through wx.request.
  const wx = fakeWx(stack, { user: 'unused' });
  const navigations = [];
  wx.navigateTo = (options) => {
    navigations.push(options.url);
    if (wx.onNavigate) wx.onNavigate(options.url);
  };
  wx.navigateBack = () => navigations.push('back');

  let app;
  let definition;
  Object.assign(globalThis, {
    wx,
    App: (o) => (app = o),
    getApp: () => app,
    Page: (o) => (definition = o),
  });
  const require = createRequire(join(dir, 'app.js'));
  require('./app.js');
  const pages = {};
  for (const page of require('./app.json').pages) {
    require(`./${page}.js`);
    pages[page.split('/')[1]] = definition;
  }
  /** A page instance: its definition with its own data and setData. */
  const open = (page, query = {}) => {
    const instance = Object.assign({}, pages[page], {
      data: structuredClone(pages[page].data),
      setData(patch) {
        Object.assign(this.data, patch);
      },
    });
    instance.loaded = instance.onLoad ? instance.onLoad(query) : undefined;
    return instance;
  };
  return { app, wx, open, navigations, dir };
}

test('demo: sign in, GET /v1/me, avatar, nickname, log out', async () => {
  const { app, wx, open } = loadDemo('demo-user', {});
  const index = open('index');
  await index.loaded;
  assert.equal(index.data.user, null);
  await index.onLogin();
  assert.equal(index.data.error, '');
  assert.match(index.data.user.id, /^u_/);
  await index.onCallMe();
  assert.match(index.data.answer, /^200 \{"id":"u_/);

  const profile = open('profile');
  await profile.loaded;
  const avatar = join(stack.dir, 'avatar.png');
  writeFileSync(avatar, PNG);
  await profile.onChooseAvatar({ detail: { avatarUrl: avatar } });
  assert.equal(profile.data.error, '');
  assert.match(profile.data.avatarUrl, /\/v1\/avatars\/[0-9a-f]{64}\.png$/);
  await profile.onSubmit({ detail: { value: { nickname: '小明' } } });
  assert.equal(profile.data.nickname, '小明');
  assert.equal(app.auth.currentUser().nickname, '小明');

  await index.onLogout();
  assert.equal(index.data.user, null);
  assert.equal(wx.storage.size, 0);
  assert.deepEqual(index.data.events.slice(0, 2), ['logout (logout)', 'profile changed']);
});

test('demo with silentLogin off: the sign-in page completes the waiting login', async () => {
  const { wx, open, navigations } = loadDemo('demo-explicit', { silentLogin: false });
  const index = open('index');
  await index.loaded;
  let login;
  wx.onNavigate = (url) => {
    login = open('login', { reason: new URL(url, 'https://x').searchParams.get('reason') });
    setImmediate(() => login.onLogin());
  };
  await index.onLogin();
  assert.equal(index.data.error, '');
  assert.match(index.data.user.id, /^u_/);
  assert.deepEqual(navigations, ['/pages/login/login?reason=login_required', 'back']);
  assert.equal(login.data.reason, 'login_required');
});

test('demo with silentLogin off: leaving the sign-in page fails the waiting login', async () => {
  const { wx, open } = loadDemo('demo-leaver', { silentLogin: false });
  const index = open('index');
  await index.loaded;
  wx.onNavigate = () => {
    const login = open('login', { reason: 'login_required' });
    setImmediate(() => login.onUnload());
  };
  await index.onLogin();
  assert.equal(index.data.user, null);
  assert.match(index.data.error, /^login_cancelled: /);
});
