/*
 * lagless-msgpack.js: decode the MessagePack that lagless responses send, in the browser.
 * No dependencies, no build step. Load it with a <script> tag; it defines window.laglessMsgpack
 * (or module.exports under CommonJS):
 *
 *   const items = await laglessMsgpack.fetchPayload("/api/items");   // msgpack, JSON fallback
 *   const value = laglessMsgpack.decode(new Uint8Array(buffer));
 *
 * Maps become plain objects, bin becomes Uint8Array, the timestamp extension (-1) becomes a
 * Date, integers beyond 2^53 become BigInt. Spec: https://github.com/msgpack/msgpack/blob/master/spec.md
 */
(function (root, factory) {
  var api = factory();
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.laglessMsgpack = api;
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";
  var utf8 = new TextDecoder("utf-8");
  var ACCEPT = "application/msgpack, application/json;q=0.5";

  function decode(input) {
    var bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
    var view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    var pos = 0;

    function need(n) {
      if (pos + n > bytes.length) throw new RangeError("msgpack: truncated input at byte " + pos);
    }
    function u8() { need(1); return bytes[pos++]; }
    function u16() { need(2); var v = view.getUint16(pos); pos += 2; return v; }
    function u32() { need(4); var v = view.getUint32(pos); pos += 4; return v; }
    function big(v) { return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v; }
    function u64() { need(8); var v = view.getBigUint64(pos); pos += 8; return big(v); }
    function i64() { need(8); var v = view.getBigInt64(pos); pos += 8; return big(v); }
    function str(n) { need(n); var s = utf8.decode(bytes.subarray(pos, pos + n)); pos += n; return s; }
    function bin(n) { need(n); var b = bytes.slice(pos, pos + n); pos += n; return b; }
    function array(n) { var a = new Array(n); for (var i = 0; i < n; i++) a[i] = value(); return a; }
    function map(n) {
      var o = {};
      for (var i = 0; i < n; i++) {
        var k = String(value());
        var v = value();
        // A "__proto__" key must be data, not a prototype change.
        if (k === "__proto__") Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
        else o[k] = v;
      }
      return o;
    }
    function ext(n) {
      need(1);
      var type = view.getInt8(pos++);
      var data = bin(n);
      if (type !== -1) return { type: type, data: data };
      var dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
      var sec, nsec;
      if (n === 4) { sec = dv.getUint32(0); nsec = 0; }
      else if (n === 8) {
        var hi = dv.getUint32(0), lo = dv.getUint32(4);
        nsec = hi >>> 2;
        sec = (hi & 0x3) * 4294967296 + lo;
      } else if (n === 12) { nsec = dv.getUint32(0); sec = Number(dv.getBigInt64(4)); }
      else throw new RangeError("msgpack: bad timestamp length " + n);
      return new Date(sec * 1000 + Math.floor(nsec / 1e6));
    }
    function value() {
      var b = u8();
      if (b <= 0x7f) return b;
      if (b <= 0x8f) return map(b & 0x0f);
      if (b <= 0x9f) return array(b & 0x0f);
      if (b <= 0xbf) return str(b & 0x1f);
      if (b >= 0xe0) return b - 0x100;
      switch (b) {
        case 0xc0: return null;
        case 0xc2: return false;
        case 0xc3: return true;
        case 0xc4: return bin(u8());
        case 0xc5: return bin(u16());
        case 0xc6: return bin(u32());
        case 0xc7: return ext(u8());
        case 0xc8: return ext(u16());
        case 0xc9: return ext(u32());
        case 0xca: need(4); var f = view.getFloat32(pos); pos += 4; return f;
        case 0xcb: need(8); var d = view.getFloat64(pos); pos += 8; return d;
        case 0xcc: return u8();
        case 0xcd: return u16();
        case 0xce: return u32();
        case 0xcf: return u64();
        case 0xd0: need(1); return view.getInt8(pos++);
        case 0xd1: need(2); var s16 = view.getInt16(pos); pos += 2; return s16;
        case 0xd2: need(4); var s32 = view.getInt32(pos); pos += 4; return s32;
        case 0xd3: return i64();
        case 0xd4: return ext(1);
        case 0xd5: return ext(2);
        case 0xd6: return ext(4);
        case 0xd7: return ext(8);
        case 0xd8: return ext(16);
        case 0xd9: return str(u8());
        case 0xda: return str(u16());
        case 0xdb: return str(u32());
        case 0xdc: return array(u16());
        case 0xdd: return array(u32());
        case 0xde: return map(u16());
        case 0xdf: return map(u32());
      }
      throw new RangeError("msgpack: unknown type byte 0x" + b.toString(16) + " at " + (pos - 1));
    }

    var out = value();
    if (pos !== bytes.length) throw new RangeError("msgpack: " + (bytes.length - pos) + " trailing bytes");
    return out;
  }

  /* fetch() asking for MessagePack; decodes either answer by its Content-Type. */
  function fetchPayload(url, init) {
    init = Object.assign({}, init || {});
    var headers = new Headers(init.headers || {});
    if (!headers.has("Accept")) headers.set("Accept", ACCEPT);
    init.headers = headers;
    return fetch(url, init).then(function (response) {
      var type = (response.headers.get("Content-Type") || "").split(";")[0].trim();
      if (type === "application/msgpack" || type === "application/x-msgpack") {
        return response.arrayBuffer().then(decode);
      }
      return response.json();
    });
  }

  return { decode: decode, fetchPayload: fetchPayload, ACCEPT: ACCEPT };
});
