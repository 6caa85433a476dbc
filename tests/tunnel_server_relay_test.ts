/**
 * The relay (`GET /v1/relay`) carrying a real SSH session: our client over
 * the relay WebSocket logs in to a real OpenSSH sshd, which is what
 * `ssh -o ProxyCommand="fynx tunnel relay ..."` does with stdio in between.
 */
import assert from "node:assert/strict";
import { connect } from "../client.ts";
import { webSocketDuplex } from "../tunnel/mod.ts";
import {
  bytesEqual,
  ensureTestUser,
  skipOpenssh,
  startSshd,
} from "./_openssh.ts";
import { openWebSocket, startServer } from "./_tunnel_server.ts";

Deno.test({
  name: "tunnel relay: our client logs in to OpenSSH sshd through the relay",
  ignore: skipOpenssh("tunnel relay to sshd"),
  async fn() {
    const user = await ensureTestUser();
    const sshd = await startSshd({ hostKeyTypes: ["ed25519"] });
    const server = await startServer({
      relayAllow: [`127.0.0.1:${sshd.port}`],
    });
    try {
      const auth = { authorization: `Bearer ${await server.token("alice")}` };
      const ws = await openWebSocket(
        `ws://127.0.0.1:${server.port}/v1/relay?target=127.0.0.1:${sshd.port}`,
        auth,
      );
      const duplex = webSocketDuplex(ws, { pingInterval: 0 });
      const client = await connect({
        transport: duplex,
        username: user.username,
        password: user.password,
        verifyHostKey: (key) =>
          sshd.hostKeys.some((k) => bytesEqual(k.blob, key.blob)),
      });
      const r = await client.exec("echo relayed");
      assert.equal(new TextDecoder().decode(r.stdout), "relayed\n");
      await client.close();
      await duplex.closed;
      // Another port on the same host is not on the list.
      const res = await fetch(
        `${server.base}/v1/relay?target=127.0.0.1:${sshd.port + 1}`,
        { headers: auth },
      );
      assert.equal(res.status, 403);
      await res.body?.cancel();
      const audit = await server.tunnel.store.listAudit(20);
      assert.ok(audit.some((e) => e.type === "relay.open"));
      assert.ok(audit.some((e) => e.type === "relay.refused"));
    } finally {
      await server.close();
      await sshd.stop();
    }
  },
});
