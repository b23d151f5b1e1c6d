// The platform the client runs on: wx itself, or, in development against `wxlogin dev`, wx with
// login codes (and phone codes) minted by the WeChat simulator.
const { wxPlatform } = require('@wxlogin/miniprogram');
const config = require('../config');

function simulator(path, data) {
  return new Promise((resolve, reject) => {
    wx.request({
      url: config.simulator + path,
      method: 'POST',
      data: Object.assign({ appid: config.appid, user: config.devUser }, data),
      success: (res) =>
        res.statusCode === 200 ? resolve(res.data) : reject({ errMsg: `simulator ${path}: HTTP ${res.statusCode}` }),
      fail: reject,
    });
  });
}

function platform() {
  const base = wxPlatform(wx);
  if (!config.simulator) return base;
  return Object.assign({}, base, {
    login: () => simulator('/__mock/login').then((r) => r.code),
  });
}

// The getPhoneNumber event's detail, as the client takes it. In development the button (with a
// test appid) gives no usable code, so the simulator mints one for devPhone.
function phoneDetail(detail) {
  if (!config.simulator) return Promise.resolve(detail);
  return simulator('/__mock/phone-code', { phone: config.devPhone, country_code: '86' }).then((r) => ({
    errMsg: 'getPhoneNumber:ok',
    code: r.code,
  }));
}

module.exports = { platform, phoneDetail };
