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
    // With the login_ticket of a phone_required or registration_closed answer:
    // POST /v1/auth/wechat/register; otherwise (or once the ticket is gone) a fresh wx.login code
    // with the phone code. A failure (registration_closed: no user has that number; phone_in_use;
    // identity_conflict: contact support) is shown and the page stays open.
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
        // A new user of a phone_required app, or of a closed app who may have been registered by
        // phone number: the phone button completes it (with the ticket the client kept).
        if (err.loginTicket) this.setData({ reason: err.code });
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
