/**
 * Text lines over byte streams: how the bench talks to its helper processes
 * (bench/_e2e_server.ts, bench/_forward_peer.ts), one command per line in,
 * one reply per line out.
 *
 * @module
 */

/** The lines of `stream` (without their "\n"), as they arrive. */
export async function* lines(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      yield line;
    }
  }
}

/** Reads a child's replies one at a time. */
export interface LineReader {
  /** The next line; rejects, naming `who`, once the stream has ended. */
  next(): Promise<string>;
  /** Stops reading. */
  cancel(): Promise<void>;
}

/** A {@linkcode LineReader} over `stream` (a child's stdout, say). */
export function lineReader(
  stream: ReadableStream<Uint8Array>,
  who: string,
): LineReader {
  const it = lines(stream);
  return {
    async next() {
      const r = await it.next();
      if (r.done) throw new Error(`${who} exited`);
      return r.value;
    },
    async cancel() {
      await it.return(undefined);
    },
  };
}
