// The sign-in page the client asks for through onLoginRequired (see app.js). Whatever completes
// the login here resumes the calls that were waiting; leaving the page without it fails them.
const describe = require('../../utils/describe');
const { phoneDetail } = require('../../utils/platform');

const { auth } = getApp();

Page({
  data: { reason: '', error: '' },

  onLoad(query) {
    this.setData({ reason: query.reason || '' });
  },

  onPhone(e) {
    this.setData({ error: '' });
    // With the login_ticket of a phone_required answer: POST /v1/auth/wechat/register;
    // otherwise a fresh wx.login code with the phone code.
    return phoneDetail(e.detail)
      .then((detail) => auth.loginWithPhone(detail))
      .then(() => this.finish())
      .catch((err) => this.setData({ error: describe(err) }));
  },

  onLogin() {
    this.setData({ error: '' });
    return auth
      .login()
      .then(() => this.finish())
      .catch((err) => {
        // A new user of a phone_required app: the phone button completes it.
        if (err.code === 'phone_required') this.setData({ reason: 'phone_required' });
        else this.setData({ error: describe(err) });
      });
  },

  finish() {
    this.done = true;
    wx.navigateBack();
  },

  onUnload() {
    if (!this.done) auth.cancelLogin();
  },
});
