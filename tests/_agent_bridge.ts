/**
 * Test helper run as a child process: joins its stdin/stdout to the Unix
 * socket given as the only argument. The `test` permission set grants net
 * access to loopback hosts only, and Deno asks for `unix:<exact path>` net
 * access for Unix sockets, so the agent tests reach a freshly started
 * `ssh-agent` through this bridge, started with exactly that permission.
 *
 * @module
 */
if (import.meta.main) {
  const conn = await Deno.connect({ transport: "unix", path: Deno.args[0] });
  await Promise.allSettled([
    Deno.stdin.readable.pipeTo(conn.writable),
    conn.readable.pipeTo(Deno.stdout.writable),
  ]);
}
