// Headless-browser check of MQTT over WebSocket: Debian's `chromium` loads
// a local page that loads MQTT.js from the npm package (its browser bundle,
// node_modules/mqtt/dist/mqtt.min.js) and, over ws:// to a real `tern`,
// subscribes, publishes at QoS 0, 1 and 2 to itself and reports what came
// back to this script's HTTP server. Exits 0 when the browser received all
// three messages, 1 otherwise (every wait bounded).
//
// Run: `node tests/js/browser.mjs` (after `npm ci` in tests/js and
// `cargo build -p tern-broker`; CHROMIUM overrides the browser binary, TERN_BIN
// the broker's). Not part of scripts/test.sh: starting a browser is slow and
// CI machines may lack one.

import { spawn, spawnSync } from "node:child_process";
import { createServer } from "node:http";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, "..", "..");
const TERN =
  process.env.TERN_BIN ||
  join(process.env.CARGO_TARGET_DIR || join(REPO, "target"), "debug", "tern");
const CHROMIUM = process.env.CHROMIUM || "chromium";
const BUNDLE = join(HERE, "node_modules", "mqtt", "dist", "mqtt.min.js");
const LIMIT_MS = 30000;

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>tern ws</title>
<script src="/mqtt.min.js"></script>
<script>
  const params = new URLSearchParams(location.search);
  const report = (body) => fetch("/result", { method: "POST", body: JSON.stringify(body) });
  const topic = "tern/browser/" + Math.random().toString(16).slice(2);
  const got = [];
  const client = mqtt.connect(params.get("ws"), { reconnectPeriod: 0, connectTimeout: 5000 });
  client.on("error", (e) => report({ ok: false, error: String(e) }));
  client.on("message", (t, payload, packet) => {
    got.push([t, payload.toString(), packet.qos]);
    if (got.length === 3) {
      const ok = JSON.stringify(got) === JSON.stringify([0, 1, 2].map((q) => [topic, "qos" + q, q]));
      client.end();
      report({ ok, got });
    }
  });
  client.on("connect", () => {
    client.subscribe(topic, { qos: 2 }, (err) => {
      if (err) return report({ ok: false, error: String(err) });
      for (const qos of [0, 1, 2]) client.publish(topic, "qos" + qos, { qos });
    });
  });
</script>`;

function fail(why) {
  console.error(`browser test: FAILED: ${why}`);
  process.exitCode = 1;
}

if (!existsSync(TERN)) {
  fail(`${TERN} does not exist: run cargo build -p tern-broker or set TERN_BIN`);
} else if (!existsSync(BUNDLE)) {
  fail(`${BUNDLE} is missing: run npm ci in tests/js`);
} else if (spawnSync(CHROMIUM, ["--version"]).status !== 0) {
  fail(`no ${CHROMIUM}: install Debian's chromium or set CHROMIUM`);
} else {
  await run();
}

async function run() {
  const dir = mkdtempSync(join(tmpdir(), "tern-browser-"));
  const config = join(dir, "tern.toml");
  writeFileSync(
    config,
    'sys_interval = 0\nmetrics_bind = ""\nbind = []\n' +
      '[[listener]]\nbind = "127.0.0.1:0"\nkind = "ws"\n',
  );
  const tern = spawn(TERN, ["--config", config, "--workers", "2", "--log-level", "warn"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let browser;
  let server;
  const timer = setTimeout(() => finish({ ok: false, error: `no result within ${LIMIT_MS} ms` }), LIMIT_MS);
  function finish(result) {
    clearTimeout(timer);
    if (result.ok) {
      console.log(`browser test: ok (${JSON.stringify(result.got)})`);
    } else {
      fail(JSON.stringify(result));
    }
    tern.kill("SIGTERM");
    if (server) server.close();
    const clean = () => {
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 20, retryDelay: 100 });
      } catch (e) {
        console.error(`browser test: could not remove ${dir}: ${e.message}`);
      }
    };
    if (browser && browser.exitCode === null) {
      // The profile is the browser's until it and its helper processes
      // (its own process group) have exited.
      browser.once("exit", () => setTimeout(clean, 200));
      try {
        process.kill(-browser.pid, "SIGKILL");
      } catch {
        browser.kill("SIGKILL");
      }
    } else {
      clean();
    }
  }
  const wsAddr = await new Promise((resolve) => {
    createInterface({ input: tern.stdout }).on("line", (line) => {
      const m = /^tern: listening on (.+)$/.exec(line);
      if (m) resolve(m[1]);
    });
  });
  server = createServer((req, res) => {
    if (req.url.startsWith("/page.html")) {
      res.writeHead(200, { "content-type": "text/html" }).end(PAGE);
    } else if (req.url === "/mqtt.min.js") {
      res.writeHead(200, { "content-type": "text/javascript" }).end(readFileSync(BUNDLE));
    } else if (req.url === "/result" && req.method === "POST") {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        res.writeHead(204).end();
        let result;
        try {
          result = JSON.parse(body);
        } catch {
          result = { ok: false, error: body };
        }
        finish(result);
      });
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const page = `http://127.0.0.1:${server.address().port}/page.html?ws=${encodeURIComponent(`ws://${wsAddr}/mqtt`)}`;
  browser = spawn(
    CHROMIUM,
    [
      "--headless=new",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      `--user-data-dir=${join(dir, "profile")}`,
      page,
    ],
    { stdio: "ignore", detached: true },
  );
}
