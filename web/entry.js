// The widget's SIP-over-WebSocket library: JsSIP (npm, pinned in package-lock.json) bundled
// into one file by scripts/install. Exposes window.JsSIP.
module.exports = require('jssip');
