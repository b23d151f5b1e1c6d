const describe = require('../../utils/describe');
const { phoneDetail } = require('../../utils/platform');

const { auth } = getApp();

Page({
  data: { phone: '', error: '' },

  onShow() {
    const user = auth.currentUser();
    this.setData({ phone: user && user.phone ? user.phone.masked : '' });
  },

  onGetPhoneNumber(e) {
    this.setData({ error: '' });
    return phoneDetail(e.detail)
      .then((detail) => auth.bindPhone(detail))
      .then((user) => this.setData({ phone: user.phone.masked }))
      .catch((err) => this.setData({ error: describe(err) }));
  },
});
