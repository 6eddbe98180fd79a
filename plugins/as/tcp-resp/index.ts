// A network filter that reads RESP between a Redis client and redis-server. Configuration (`key=value` lines):
//   block=<COMMAND>   the command to refuse (case-insensitive; default FLUSHALL)
//   mode=error|close  error (default): the command is rewritten to one redis-server rejects, and its reply is
//                     replaced by `-ERR <COMMAND> is blocked by the proxy`; close: the connection is closed instead
// Only whole commands and whole replies pass: a partial one at the end of the data is held (Pause) until the rest
// arrives, and what is held comes back complete in the next data callback. Counts commands in the counter metric
// `tcp_resp.commands` (and `tcp_resp.blocked`), and logs each connection's count at its close.
export * from "@gcoredev/proxy-wasm-sdk-as/assembly/proxy";
import {
  RootContext, Context, registerRootContext, FilterStatusValues, get_buffer_bytes, set_buffer_bytes, BufferTypeValues, Counter,
} from "@gcoredev/proxy-wasm-sdk-as/assembly";
import { PeerTypeValues } from "@gcoredev/proxy-wasm-sdk-as/assembly/runtime";
import { configValue, log, pluginConfiguration } from "../lib/higress";

@external("env", "proxy_close_stream")
declare function proxy_close_stream(stream_type: u32): u32;

const STREAM_DOWNSTREAM: u32 = 2;
/** What a blocked command is sent as in error mode: redis-server answers it with one error reply. */
const BLOCKED_COMMAND = "*1\r\n$21\r\nPROXY_BLOCKED_COMMAND\r\n";

let block = "FLUSHALL";
let closeMode = false;
let commandsMetric: Counter | null = null;
let blockedMetric: Counter | null = null;

/** Index of the CR of the next CRLF at or after `pos`, or -1. */
function lineEnd(b: Uint8Array, pos: i32): i32 {
  for (let i = pos; i + 1 < b.length; i++) {
    if (b[i] == 13 && b[i + 1] == 10) return i;
  }
  return -1;
}

function intAt(b: Uint8Array, start: i32, end: i32): i64 {
  let neg = false;
  let n: i64 = 0;
  for (let i = start; i < end; i++) {
    const c = b[i];
    if (c == 45) neg = true;
    else n = n * 10 + <i64>(c - 48);
  }
  return neg ? -n : n;
}

/** End (exclusive) of the RESP2 value at `pos`, or -1 when it is not complete yet. Inline commands are one line. */
function valueEnd(b: Uint8Array, pos: i32): i32 {
  if (pos >= b.length) return -1;
  const t = b[pos];
  const le = lineEnd(b, pos);
  if (le < 0) return -1;
  if (t == 36 /* $ */) {
    const n = intAt(b, pos + 1, le);
    if (n < 0) return le + 2;
    const end = <i64>le + 2 + n + 2;
    return end <= <i64>b.length ? <i32>end : -1;
  }
  if (t == 42 /* * */) {
    const n = intAt(b, pos + 1, le);
    let p = le + 2;
    for (let k: i64 = 0; k < n; k++) {
      p = valueEnd(b, p);
      if (p < 0) return -1;
    }
    return p;
  }
  return le + 2; // +simple, -error, :integer, or an inline command
}

/** The command name (upper-cased) of the command at [start, end). */
function commandName(b: Uint8Array, start: i32, end: i32): string {
  let nameStart = start;
  let nameEnd = lineEnd(b, start);
  if (b[start] == 42) {
    const le = lineEnd(b, start);
    if (le + 2 >= end || b[le + 2] != 36) return "";
    const le2 = lineEnd(b, le + 2);
    nameStart = le2 + 2;
    nameEnd = nameStart + <i32>intAt(b, le + 3, le2);
  } else {
    for (let i = start; i < nameEnd; i++) {
      if (b[i] == 32) {
        nameEnd = i;
        break;
      }
    }
  }
  return String.UTF8.decode(b.slice(nameStart, nameEnd).buffer).toUpperCase();
}

class RespRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new RespConnection(context_id, this);
  }
  onConfigure(size: u32): bool {
    const config = pluginConfiguration();
    block = configValue(config, "block", "FLUSHALL").toUpperCase();
    closeMode = configValue(config, "mode", "error") == "close";
    commandsMetric = new Counter("tcp_resp.commands");
    blockedMetric = new Counter("tcp_resp.blocked");
    return true;
  }
}

class RespConnection extends Context {
  commands: u32 = 0;
  blocked: u32 = 0;
  replies: u32 = 0;
  /** Reply indexes (in command order) whose reply is the blocked command's. */
  replaced: Array<u32> = new Array<u32>();
  constructor(context_id: u32, root: RespRoot) {
    super(context_id, root);
  }

  onDownstreamData(size: usize, end: bool): FilterStatusValues {
    if (size == 0) return FilterStatusValues.Continue;
    const b = Uint8Array.wrap(get_buffer_bytes(BufferTypeValues.NetworkDownstreamData, 0, <u32>size));
    // First pass: are all commands complete? Nothing is counted for data that is held and comes back.
    let pos = 0;
    while (pos < b.length) {
      const next = valueEnd(b, pos);
      if (next < 0) return FilterStatusValues.StopIteration;
      pos = next;
    }
    let out = "";
    let rewritten = false;
    let last = 0;
    pos = 0;
    while (pos < b.length) {
      const next = valueEnd(b, pos);
      const name = commandName(b, pos, next);
      const index = this.commands++;
      commandsMetric!.increment(1);
      if (name == block) {
        this.blocked++;
        blockedMetric!.increment(1);
        log(3, "tcp-resp: blocked " + name);
        if (closeMode) {
          proxy_close_stream(STREAM_DOWNSTREAM);
          return FilterStatusValues.StopIteration;
        }
        out += String.UTF8.decode(b.slice(last, pos).buffer) + BLOCKED_COMMAND;
        last = next;
        rewritten = true;
        this.replaced.push(index);
      }
      pos = next;
    }
    if (rewritten) {
      out += String.UTF8.decode(b.slice(last).buffer);
      set_buffer_bytes(BufferTypeValues.NetworkDownstreamData, 0, <u32>size, String.UTF8.encode(out));
    }
    return FilterStatusValues.Continue;
  }

  onUpstreamData(size: usize, end: bool): FilterStatusValues {
    if (size == 0) return FilterStatusValues.Continue;
    const b = Uint8Array.wrap(get_buffer_bytes(BufferTypeValues.NetworkUpstreamData, 0, <u32>size));
    let pos = 0;
    while (pos < b.length) {
      const next = valueEnd(b, pos);
      if (next < 0) return FilterStatusValues.StopIteration;
      pos = next;
    }
    if (this.replaced.length == 0) {
      this.replies += this.countReplies(b);
      return FilterStatusValues.Continue;
    }
    let out = "";
    let rewritten = false;
    let last = 0;
    pos = 0;
    while (pos < b.length) {
      const next = valueEnd(b, pos);
      const index = this.replies++;
      if (this.replaced.length > 0 && this.replaced[0] == index) {
        this.replaced.shift();
        out += String.UTF8.decode(b.slice(last, pos).buffer) + "-ERR " + block + " is blocked by the proxy\r\n";
        last = next;
        rewritten = true;
      }
      pos = next;
    }
    if (rewritten) {
      out += String.UTF8.decode(b.slice(last).buffer);
      set_buffer_bytes(BufferTypeValues.NetworkUpstreamData, 0, <u32>size, String.UTF8.encode(out));
    }
    return FilterStatusValues.Continue;
  }

  countReplies(b: Uint8Array): u32 {
    let n: u32 = 0;
    let pos = 0;
    while (pos < b.length) {
      pos = valueEnd(b, pos);
      n++;
    }
    return n;
  }

  onDownstreamConnectionClose(t: PeerTypeValues): void {
    log(2, "tcp-resp: connection closed commands=" + this.commands.toString() + " blocked=" + this.blocked.toString() + " peer=" + t.toString());
  }
}

registerRootContext((context_id: u32) => {
  return new RespRoot(context_id);
}, "tcp_resp");
