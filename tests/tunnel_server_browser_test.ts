/**
 * The status page in a real headless Chromium (Debian's `chromium`), driven
 * over the Chrome DevTools Protocol from Deno's WebSocket, at a phone-sized
 * viewport: it lists a live tunnel, and its request count changes after
 * traffic without a reload.
 */
import assert from "node:assert/strict";
import {
  connectClient,
  localService,
  startServer,
  waitFor,
} from "./_tunnel_server.ts";

function findChromium(): string | null {
  for (const path of ["/usr/bin/chromium", "/usr/bin/chromium-browser"]) {
    try {
      Deno.statSync(path);
      return path;
    } catch {
      // Next.
    }
  }
  return null;
}

const chromium = findChromium();

/** A minimal CDP client over the browser's WebSocket endpoint. */
class Cdp {
  #ws: WebSocket;
  #next = 1;
  #pending = new Map<
    number,
    {
      resolve: (v: Record<string, unknown>) => void;
      reject: (e: Error) => void;
    }
  >();

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      const p = msg.id !== undefined ? this.#pending.get(msg.id) : undefined;
      if (!p) return;
      this.#pending.delete(msg.id);
      if (msg.error) p.reject(new Error(`CDP: ${msg.error.message}`));
      else p.resolve(msg.result);
    };
  }

  static async open(url: string): Promise<Cdp> {
    const ws = new WebSocket(url);
    await new Promise((r, j) => {
      ws.onopen = r;
      ws.onerror = () => j(new Error(`Cannot reach DevTools at ${url}`));
    });
    return new Cdp(ws);
  }

  send(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
  ): Promise<Record<string, unknown>> {
    const id = this.#next++;
    const { promise, resolve, reject } = Promise.withResolvers<
      Record<string, unknown>
    >();
    this.#pending.set(id, { resolve, reject });
    this.#ws.send(JSON.stringify({ id, method, params, sessionId }));
    return promise;
  }

  async close(): Promise<void> {
    const closed = new Promise((r) => (this.#ws.onclose = r));
    this.#ws.close();
    await closed;
  }
}

Deno.test({
  name:
    "tunnel status page: headless Chromium at phone size shows live updates",
  // CI installs chromium (.ci/run); elsewhere the test needs it installed.
  ignore: chromium === null && !Deno.env.get("CI"),
  async fn() {
    const service = localService(() => new Response("hello"));
    const server = await startServer({ statusInterval: 200 });
    const c = await connectClient(server, { expose: { app: service.port } });
    const profile = await Deno.makeTempDir();
    const browser = new Deno.Command(chromium!, {
      args: [
        "--headless=new",
        "--no-sandbox", // CI runs as root.
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        `--user-data-dir=${profile}`,
        "about:blank",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Chromium prints its DevTools endpoint on stderr.
    const lines = browser.stderr.pipeThrough(new TextDecoderStream())
      .getReader();
    let cdp: Cdp | null = null;
    const draining = (async () => {
      let text = "";
      let found = false;
      const timer = setTimeout(() => {
        if (!found) browser.kill("SIGKILL");
      }, 15_000);
      try {
        while (true) {
          const { value, done } = await lines.read();
          if (done) break;
          text += value;
          const m = /DevTools listening on (ws:\/\/\S+)/.exec(text);
          if (m && !found) {
            found = true;
            cdp = await Cdp.open(m[1]);
          }
        }
      } finally {
        clearTimeout(timer);
      }
      if (!found) {
        throw new Error(`Chromium did not start:\n${text.slice(-2000)}`);
      }
    })();
    try {
      await waitFor(() => cdp !== null, 15_000, "Chromium's DevTools endpoint");
      const browserCdp = cdp!;
      const { targetId } = await browserCdp.send("Target.createTarget", {
        url: "about:blank",
      });
      const { sessionId } = await browserCdp.send("Target.attachToTarget", {
        targetId,
        flatten: true,
      }) as { sessionId: string };
      const page = (method: string, params: Record<string, unknown> = {}) =>
        browserCdp.send(method, params, sessionId);
      await page("Emulation.setDeviceMetricsOverride", {
        width: 390,
        height: 844,
        deviceScaleFactor: 3,
        mobile: true,
      });
      await page("Page.enable");
      await page("Page.navigate", { url: `${server.base}/` });
      const evaluate = async (expression: string): Promise<unknown> => {
        const r = await page("Runtime.evaluate", {
          expression,
          returnByValue: true,
        }) as { result: { value?: unknown } };
        return r.result.value;
      };
      const requests = () =>
        evaluate(
          `document.querySelector('tr[data-tunnel="alice/app"] .requests')?.textContent ?? null`,
        );
      await waitFor(
        async () => (await requests()) === "0",
        10_000,
        "the tunnel row",
      );
      assert.equal(
        await evaluate(
          `document.querySelector('tr[data-tunnel="alice/app"] .tunnel-name').textContent`,
        ),
        "/t/alice/app/",
      );
      // Phone layout: no table header, cards, nothing wider than the screen.
      assert.equal(
        await evaluate(
          `getComputedStyle(document.querySelector("thead")).display`,
        ),
        "none",
      );
      assert.ok(
        (await evaluate(`document.documentElement.scrollWidth`) as number) <=
          390,
      );
      // A marker that a reload would erase.
      await evaluate(`window.__noReload = 42`);
      for (let i = 0; i < 3; i++) {
        await (await fetch(`${server.base}/t/alice/app/`)).text();
      }
      await waitFor(
        async () => (await requests()) === "3",
        10_000,
        "the count to change",
      );
      assert.equal(await evaluate(`window.__noReload`), 42);
      await browserCdp.send("Browser.close").catch(() => {});
      await browserCdp.close().catch(() => {});
    } finally {
      try {
        browser.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await browser.status;
      await draining.catch(() => {});
      await c.close();
      await server.close();
      await service.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  },
});
