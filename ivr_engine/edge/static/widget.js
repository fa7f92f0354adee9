// The web widget (/w/<app>): a click on a menu entry asks the engine for an anonymous call
// plan deep-linked to that node (POST /w/<app>/calls), then places a WebRTC call with JsSIP
// (SIP over secure WebSocket to Asterisk, the plan's token in X-IVR-Token). The keypad sends
// RFC 4733 events through the browser's RTCDTMFSender. No framework, no CDN.
//
// window.ivrWidget exposes the state and the timings of the last call (performance.now()
// milliseconds), for the page's tests and for measuring set-up and ICE/DTLS handshakes.
(function () {
  'use strict';
  var settings = JSON.parse(document.getElementById('ivr-widget-settings').textContent);
  var texts = settings.texts;
  var root = document.querySelector('.ivr-widget');
  var panel = root.querySelector('.ivr-call-panel');
  var statusLine = root.querySelector('.ivr-status');
  var audio = root.querySelector('.ivr-audio');
  var state = { status: 'idle', target: null, error: null, timings: {}, dtmf: [], calls: 0 };
  var ua = null;
  var session = null;
  window.ivrWidget = state;

  function mark(name) { state.timings[name] = performance.now(); }

  function show(status, text) {
    state.status = status;
    statusLine.textContent = text;
  }

  function reset() {
    session = null;
    if (ua) { ua.stop(); ua = null; }
  }

  function watch(pc) {
    pc.addEventListener('iceconnectionstatechange', function () {
      mark('ice_' + pc.iceConnectionState);
    });
    pc.addEventListener('connectionstatechange', function () {
      // 'connected': ICE and the DTLS handshake are both done
      mark('pc_' + pc.connectionState);
    });
    pc.addEventListener('track', function (ev) {
      if (ev.streams && ev.streams[0]) { audio.srcObject = ev.streams[0]; }
    });
  }

  function place(plan) {
    var socket = new JsSIP.WebSocketInterface(plan.sip.wss_url);
    ua = new JsSIP.UA({ sockets: [socket], uri: plan.sip.from_uri, register: false,
      session_timers: false, user_agent: 'ivr-engine-widget' });
    ua.on('connected', function () {
      mark('ws_connected');
      var headers = Object.keys(plan.sip.headers).map(function (k) {
        return k + ': ' + plan.sip.headers[k];
      });
      var ice = plan.sip.ice_servers.length ? [{ urls: plan.sip.ice_servers }] : [];
      session = ua.call(plan.sip.uri, {
        mediaConstraints: { audio: true, video: false },
        extraHeaders: headers,
        pcConfig: { iceServers: ice, rtcpMuxPolicy: 'require' }
      });
      mark('invite');
      watch(session.connection);
      session.on('progress', function () { mark('progress'); });
      session.on('accepted', function () { mark('accepted'); });
      session.on('confirmed', function () {
        mark('confirmed');
        show('connected', texts.connected);
      });
      session.on('ended', function () {
        mark('ended');
        show('ended', texts.ended);
        reset();
      });
      session.on('failed', function (ev) {
        mark('failed');
        state.error = ev.cause + (ev.message && ev.message.status_code ?
          ' (' + ev.message.status_code + ')' : '');
        show('failed', texts.failed);
        reset();
      });
    });
    ua.on('disconnected', function () {
      if (state.status === 'calling') {
        state.error = 'WebSocket to ' + plan.sip.wss_url + ' failed';
        show('failed', texts.failed);
        reset();
      }
    });
    ua.start();
  }

  function call(target) {
    if (session || state.status === 'calling') { return; }
    state.target = target;
    state.error = null;
    state.timings = {};
    state.dtmf = [];
    state.calls += 1;
    mark('click');
    panel.hidden = false;
    show('calling', texts.calling);
    fetch(settings.calls_url, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ target: target, language: settings.language })
    }).then(function (resp) {
      return resp.json().then(function (body) {
        if (!resp.ok) { throw new Error(body.detail || resp.statusText); }
        return body;
      });
    }).then(function (plan) {
      mark('plan');
      state.plan_target = plan.target;
      place(plan);
    }).catch(function (err) {
      state.error = String(err.message || err);
      show('failed', texts.failed);
    });
  }

  function key(k) {
    if (!session || !session.isEstablished()) { return; }
    // RFC 4733 events through the RTCDTMFSender of the audio sender
    session.sendDTMF(k, { transportType: JsSIP.C.DTMF_TRANSPORT.RFC2833, duration: 120,
      interToneGap: 80 });
    state.dtmf.push(k);
  }

  root.addEventListener('click', function (ev) {
    var button = ev.target.closest('button');
    if (!button) { return; }
    if (button.classList.contains('ivr-call')) { call(button.dataset.target); }
    else if (button.classList.contains('ivr-key')) { key(button.dataset.key); }
    else if (button.classList.contains('ivr-hangup') && session) { session.terminate(); }
  });

  // waits and open-now move: refresh them every 20 s from the same tree
  function refresh() {
    fetch(settings.menu_url).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (tree) {
        if (!tree) { return; }
        (function walk(node) {
          var li = root.querySelector('[data-node="' + CSS.escape(node.id) + '"]');
          if (li) {
            li.classList.toggle('closed', !node.open);
            var s = li.querySelector('.ivr-state');
            if (!node.open) { s.textContent = texts.closed; }
            else if (node.wait && node.wait.seconds !== null) {
              s.textContent = texts.wait + ' ' + Math.max(1, Math.round(node.wait.seconds / 60)) +
                ' ' + texts.min;
            } else { s.textContent = ''; }
          }
          node.children.forEach(walk);
        })(tree.root);
      }).catch(function () {});
  }
  setInterval(refresh, 20000);
}());
