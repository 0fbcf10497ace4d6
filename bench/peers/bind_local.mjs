// Preloaded into Node peers (`node --import bench/peers/bind_local.mjs ...`): a server that would
// listen on every interface listens on 127.0.0.1 instead, since the benchmark binds nothing else.
import net from "node:net";

const ANY = new Set([undefined, null, "", "0.0.0.0", "::"]);
const listen = net.Server.prototype.listen;

net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first !== null && typeof first === "object" && !Array.isArray(first)) {
    if ("port" in first && ANY.has(first.host)) args[0] = { ...first, host: "127.0.0.1" };
  } else if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    if (typeof args[1] === "string" || args[1] === undefined || args[1] === null) {
      if (ANY.has(args[1])) args[1] = "127.0.0.1";
    } else {
      args.splice(1, 0, "127.0.0.1");
    }
  }
  return listen.apply(this, args);
};
