// Where the demo logs in. As shipped: `wxlogin dev` on this computer (see README.md).
module.exports = {
  // wxlogin. A real mini program: your https server, e.g. 'https://login.example.com'.
  baseURL: 'http://127.0.0.1:8080',
  // The appid sent with each login: `wxlogin dev`'s demo app. A real mini program: your appid
  // (the same as in project.config.json).
  appid: 'wx0000000000000001',
  // The WeChat simulator of `wxlogin dev`. It does not know the codes of the real wx.login, so
  // while this is set the demo gets its login and phone codes from the simulator's control API,
  // as WeChat would give them to the simulated user below. A real mini program: null.
  simulator: 'http://127.0.0.1:8081',
  // The simulated WeChat user (any name; each name is another user) and its phone number.
  devUser: 'alice',
  devPhone: '13800138000',
  // false: no silent wx.login; every login goes through pages/login (an explicit sign-in page).
  silentLogin: true,
};
