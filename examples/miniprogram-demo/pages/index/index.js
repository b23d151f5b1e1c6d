const describe = require('../../utils/describe');

const { auth } = getApp();

Page({
  data: { user: null, error: '', events: [], answer: '' },

  onLoad() {
    const log = (text) => this.setData({ events: [text].concat(this.data.events).slice(0, 5) });
    this.unsubscribe = [
      auth.on('login', (user) => log(`login ${user ? user.id : ''}`)),
      auth.on('refresh', () => log('refresh')),
      auth.on('logout', (e) => log(`logout (${e.reason})`)),
      auth.on('user', () => log('profile changed')),
    ];
    return auth.ready().then((user) => this.setData({ user }));
  },

  onShow() {
    this.setData({ user: auth.currentUser() });
  },

  onUnload() {
    this.unsubscribe.forEach((off) => off());
  },

  show(promise) {
    this.setData({ error: '' });
    return promise.catch((e) => this.setData({ error: describe(e) }));
  },

  onLogin() {
    // Logs in with wx.login when there is no session, refreshes when the token is due.
    return this.show(auth.ensureLogin().then((user) => this.setData({ user })));
  },

  onCallMe() {
    // Any request through the client: the token is added, a 401 is refreshed and retried once.
    return this.show(
      auth.request({ url: '/v1/me' }).then((res) => {
        this.setData({ answer: `${res.statusCode} ${JSON.stringify(res.data)}`, user: auth.currentUser() });
      }),
    );
  },

  onProfile() {
    wx.navigateTo({ url: '/pages/profile/profile' });
  },

  onPhone() {
    wx.navigateTo({ url: '/pages/phone/phone' });
  },

  onLogout() {
    return this.show(auth.logout().then(() => this.setData({ user: null, answer: '' })));
  },

  onLogoutAll() {
    return this.show(auth.logout({ allDevices: true }).then(() => this.setData({ user: null, answer: '' })));
  },
});
