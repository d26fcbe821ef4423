// MQTT.js (npm package `mqtt`) against the real `tern` binary over
// WebSocket (ws://), next to a tcp listener: MQTT 3.1 (subprotocol
// mqttv3.1), 3.1.1 and 5.0 at every QoS, a message larger than one
// default frame, ws <-> tcp, a persistent session resumed over ws, a
// wrong path refused, and MQTT over WebSocket over TLS (wss://, with a
// certificate made by `openssl` for the test).
//
// The broker binary is TERN_BIN, else $CARGO_TARGET_DIR/debug/tern, else
// <repo>/target/debug/tern. Run: `npm ci && node --test` in tests/js.
// Every wait is bounded.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { randomBytes } from "node:crypto";
import mqtt from "mqtt";

const WAIT = 5000;
const REPO = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BIN =
  process.env.TERN_BIN ||
  join(process.env.CARGO_TARGET_DIR || join(REPO, "target"), "debug", "tern");

let tern;
let dir;
let tcpUrl;
let wsUrl;
let wssUrl;
let caPem;

before(async () => {
  assert.ok(existsSync(BIN), `${BIN} does not exist: run cargo build -p tern-broker or set TERN_BIN`);
  dir = mkdtempSync(join(tmpdir(), "tern-mqttjs-"));
  const file = join(dir, "tern.toml");
  const cert = join(dir, "server.pem");
  const key = join(dir, "server.key");
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
      "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
      "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
    { stdio: "ignore", timeout: 30000 },
  );
  caPem = readFileSync(cert);
  writeFileSync(
    file,
    'sys_interval = 0\n[[listener]]\nbind = "127.0.0.1:0"\n' +
      '[[listener]]\nbind = "127.0.0.1:0"\nkind = "ws"\n' +
      `[[listener]]\nbind = "127.0.0.1:0"\nkind = "wss"\ntls.certfile = "${cert}"\ntls.keyfile = "${key}"\n`,
  );
  tern = spawn(BIN, ["--config", file, "--workers", "2", "--no-metrics", "--log-level", "warn"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: tern.stdout });
  const addrs = [];
  await within(
    new Promise((resolve) => {
      lines.on("line", (line) => {
        const m = /^tern: listening on (.+)$/.exec(line);
        if (m) addrs.push(m[1]);
        if (addrs.length === 3) resolve();
      });
    }),
    10000,
    "tern did not print its listeners",
  );
  tcpUrl = `mqtt://${addrs[0]}`;
  wsUrl = `ws://${addrs[1]}/mqtt`;
  wssUrl = `wss://localhost:${addrs[2].split(":").pop()}/mqtt`;
});

after(() => {
  if (tern) tern.kill("SIGTERM");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const unique = (tag) => `tern/mqttjs/${tag}/${randomBytes(6).toString("hex")}`;
const clientId = () => "j" + randomBytes(8).toString("hex");

/** A connected client (reconnects off), or the error it failed with.
 * Messages are collected from the start (a resumed session's queue comes
 * right behind the CONNACK); `messages` takes them. */
function connect(url, options = {}) {
  const client = mqtt.connect(url, {
    reconnectPeriod: 0,
    connectTimeout: WAIT,
    clientId: clientId(),
    ...options,
  });
  client.inbox = [];
  client.on("message", (topic, payload, packet) => {
    client.inbox.push({ topic, payload, qos: packet.qos });
    client.emit("inbox");
  });
  return within(
    new Promise((resolve, reject) => {
      client.once("connect", (ack) => resolve({ client, ack }));
      client.once("error", (e) => {
        client.end(true);
        reject(e);
      });
      client.once("close", () => reject(new Error("closed before CONNACK")));
    }),
    WAIT,
    `connect ${url}`,
  );
}

/** The next `n` messages on `client`. */
function messages(client, n) {
  return within(
    new Promise((resolve) => {
      const check = () => {
        if (client.inbox.length >= n) {
          client.off("inbox", check);
          resolve(client.inbox.splice(0, n));
        }
      };
      client.on("inbox", check);
      check();
    }),
    WAIT,
    `${n} messages`,
  );
}

const end = (client) => within(client.endAsync(), WAIT, "end");

for (const [name, version] of [
  ["3.1", { protocolVersion: 3, protocolId: "MQIsdp" }],
  ["3.1.1", { protocolVersion: 4 }],
  ["5.0", { protocolVersion: 5 }],
]) {
  test(`MQTT ${name} over ws: QoS 0, 1 and 2 round trips`, { timeout: 20000 }, async () => {
    const topic = unique(`qos-v${version.protocolVersion}`);
    const { client: sub } = await connect(wsUrl, version);
    const { client: pub } = await connect(wsUrl, version);
    await sub.subscribeAsync(topic, { qos: 2 });
    const got = messages(sub, 3);
    for (const qos of [0, 1, 2]) {
      await pub.publishAsync(topic, `qos${qos}`, { qos });
    }
    const msgs = await got;
    assert.deepEqual(
      msgs.map((m) => [m.topic, m.payload.toString(), m.qos]),
      [0, 1, 2].map((q) => [topic, `qos${q}`, q]),
    );
    await end(pub);
    await end(sub);
  });
}

test("a 300 kB message over ws, and ws <-> tcp both ways", { timeout: 20000 }, async () => {
  const topic = unique("big");
  const payload = randomBytes(300 * 1024);
  const { client: ws } = await connect(wsUrl);
  const { client: tcp } = await connect(tcpUrl);
  await ws.subscribeAsync(`${topic}/to-ws`, { qos: 1 });
  await tcp.subscribeAsync(`${topic}/to-tcp`, { qos: 1 });
  const toWs = messages(ws, 1);
  const toTcp = messages(tcp, 1);
  await tcp.publishAsync(`${topic}/to-ws`, payload, { qos: 1 });
  await ws.publishAsync(`${topic}/to-tcp`, payload, { qos: 1 });
  assert.ok((await toWs)[0].payload.equals(payload));
  assert.ok((await toTcp)[0].payload.equals(payload));
  await end(ws);
  await end(tcp);
});

for (const [scheme, url, tls] of [["ws", () => wsUrl, {}], ["wss", () => wssUrl, { ca: caPem }]]) {
test(`a persistent session resumed over ${scheme} gets what was queued`, { timeout: 20000 }, async () => {
  const topic = unique(`persist-${scheme}`);
  const id = clientId();
  const options = { clientId: id, clean: false, protocolVersion: 4, ...tls };
  const { client: first } = await connect(url(), options);
  await first.subscribeAsync(topic, { qos: 1 });
  await end(first);
  const { client: pub } = await connect(tcpUrl);
  for (const n of [1, 2, 3]) await pub.publishAsync(topic, `queued ${n}`, { qos: 1 });
  // Resumed several times: some reconnects land on the other worker and
  // are handed to the session's.
  const { client: again, ack } = await connect(url(), options);
  assert.equal(ack.sessionPresent, true);
  const msgs = await messages(again, 3);
  assert.deepEqual(
    msgs.map((m) => m.payload.toString()),
    ["queued 1", "queued 2", "queued 3"],
  );
  await end(again);
  for (let round = 0; round < 3; round++) {
    const { client: occupy } = await connect(tcpUrl);
    await pub.publishAsync(topic, `round ${round}`, { qos: 1 });
    const { client: back, ack: ack2 } = await connect(url(), options);
    assert.equal(ack2.sessionPresent, true);
    const [m] = await messages(back, 1);
    assert.equal(m.payload.toString(), `round ${round}`);
    await end(back);
    await end(occupy);
  }
  await end(pub);
});
}

test("MQTT 3.1.1 and 5.0 over wss: QoS 1 round trips, 300 kB", { timeout: 20000 }, async () => {
  for (const protocolVersion of [4, 5]) {
    const topic = unique(`wss-v${protocolVersion}`);
    const options = { protocolVersion, ca: caPem };
    const { client: sub } = await connect(wssUrl, options);
    const { client: pub } = await connect(wssUrl, options);
    await sub.subscribeAsync(topic, { qos: 1 });
    const got = messages(sub, 2);
    const big = randomBytes(300 * 1024);
    await pub.publishAsync(topic, "small", { qos: 1 });
    await pub.publishAsync(topic, big, { qos: 1 });
    const [a, b] = await got;
    assert.equal(a.payload.toString(), "small");
    assert.ok(b.payload.equals(big));
    await end(pub);
    await end(sub);
  }
});

test("a wss client that does not trust the certificate is refused", { timeout: 20000 }, async () => {
  await assert.rejects(connect(wssUrl, { protocolVersion: 4 }));
});

test("a wrong path is refused", { timeout: 20000 }, async () => {
  const url = wsUrl.replace(/\/mqtt$/, "/nope");
  await assert.rejects(connect(url), (e) => {
    assert.match(String(e.message || e), /404|Unexpected server response|closed/);
    return true;
  });
});
