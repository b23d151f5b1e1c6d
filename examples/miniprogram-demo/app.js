const { createAuthClient } = require('@wxlogin/miniprogram');
const config = require('./config');
const { platform } = require('./utils/platform');

// One client for the whole mini program: every page shares its session and its one login.
const auth = createAuthClient({
  baseURL: config.baseURL,
  appid: config.appid,
  platform: platform(),
  silentLogin: config.silentLogin,
  // The server wants a phone number for this new user (registration = "phone_required"; or
  // "closed", where the number may belong to a user the operator imported), or silentLogin is off:
  // show the login page. The calls waiting for a token resume when that page
  // completes the login, and fail with `login_cancelled` if the user leaves it.
  onLoginRequired(context) {
    wx.navigateTo({
      url: `/pages/login/login?reason=${context.reason}`,
      fail: () => auth.cancelLogin(),
    });
  },
});

App({
  auth,
  onLaunch() {
    auth.ready().then((user) => console.log('saved session:', user ? user.id : 'none'));
  },
});
