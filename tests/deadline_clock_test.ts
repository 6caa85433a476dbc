/** The shared deadline clock behind `rekeyInterval`. */
import assert from "node:assert/strict";
import { DeadlineClock } from "../transport/_deadline_clock.ts";

Deno.test("DeadlineClock fires each due key once, in one pass, and forgets deleted ones", async () => {
  const fired: string[] = [];
  const clock = new DeadlineClock<{ name: string }>(
    (k) => fired.push(k.name),
    20,
  );
  const a = { name: "a" }, b = { name: "b" }, c = { name: "c" };
  const now = Date.now();
  clock.set(a, now + 10);
  clock.set(b, now + 10);
  clock.set(c, now + 10);
  clock.delete(c);
  assert.equal(clock.size, 2);
  // Moving a deadline later keeps the key out of the first pass.
  clock.set(b, now + 200);
  await new Promise((r) => setTimeout(r, 80));
  assert.deepEqual(fired, ["a"]);
  assert.equal(clock.size, 1);
  await new Promise((r) => setTimeout(r, 250));
  assert.deepEqual(fired, ["a", "b"]);
  assert.equal(clock.size, 0);
  // An infinite deadline is no deadline.
  clock.set(a, Infinity);
  assert.equal(clock.size, 0);
});

Deno.test("DeadlineClock: a throwing callback does not stop the others", async () => {
  const fired: number[] = [];
  const clock = new DeadlineClock<{ n: number }>((k) => {
    if (k.n === 1) throw new Error("boom");
    fired.push(k.n);
  }, 10);
  for (const n of [1, 2, 3]) clock.set({ n }, Date.now());
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(fired, [2, 3]);
});
