// An error as one line for the page: "code: message" for the client's AuthError.
module.exports = function describe(e) {
  if (e && e.code) return `${e.code}: ${e.message}`;
  return (e && (e.errMsg || e.message)) || String(e);
};
