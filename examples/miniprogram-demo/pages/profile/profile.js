const describe = require('../../utils/describe');

const { auth } = getApp();

Page({
  data: { avatarUrl: '', nickname: '', error: '', saved: '' },

  onLoad() {
    return auth
      .getProfile()
      .then((user) => this.setData({ avatarUrl: user.avatar_url || '', nickname: user.nickname || '' }))
      .catch((e) => this.setData({ error: describe(e) }));
  },

  onChooseAvatar(e) {
    // A temporary file path: wx.uploadFile posts it to /v1/me/avatar; the answer has the public avatar_url.
    this.setData({ error: '', saved: '' });
    return auth
      .uploadAvatar(e.detail.avatarUrl)
      .then((user) => this.setData({ avatarUrl: user.avatar_url, saved: '头像已保存 Avatar saved' }))
      .catch((err) => this.setData({ error: describe(err) }));
  },

  onSubmit(e) {
    // Read from the form: WeChat may still be checking the typed nickname when `input` fires.
    this.setData({ error: '', saved: '' });
    return auth
      .updateProfile({ nickname: e.detail.value.nickname })
      .then((user) => this.setData({ nickname: user.nickname || '', saved: '昵称已保存 Nickname saved' }))
      .catch((err) => this.setData({ error: describe(err) }));
  },
});
